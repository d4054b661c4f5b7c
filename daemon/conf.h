/* Declarative configuration: each section is a table of keys (name, type, default, bounds, flags,
 * where the value is stored, description); one loader walks the YAML (libyaml), fills the structs,
 * expands ${VAR} / ${VAR:-default}, applies defaults and reports every error with its key path
 * and file:line:column. The same tables print the reference config and the effective config. */
#ifndef TETHER_CONF_H
#define TETHER_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

enum conf_type {
	CONF_BOOL,     /* bool */
	CONF_INT,      /* int64_t; bounds min..max */
	CONF_DURATION, /* int64_t milliseconds: "250ms", "30s", "5m", "1h"; bounds in ms */
	CONF_SIZE,     /* uint64_t bytes: "512", "64KiB", "4MiB", "1GiB", "10MB"; bounds in bytes */
	CONF_STRING,   /* char * (NULL when unset and no default) */
	CONF_ENUM,     /* int: index into `values` */
	CONF_FILEMODE, /* int (mode_t bits) written in octal: "0660" */
	CONF_STRLIST,  /* struct conf_strlist; a scalar is accepted as a one-element list */
	CONF_SECTION,  /* nested mapping filled in place: a struct at `offset`, keys in `sub` */
	CONF_MAP,      /* mapping of user-chosen names to `sub` tables: struct conf_array; each
			  element struct's FIRST member must be `char *name` (filled with the key) */
	CONF_LIST,     /* sequence of `sub` tables: struct conf_array */
};

#define CONF_REQUIRED 0x1u /* must be present (no default) */
#define CONF_RELOAD 0x2u   /* may change on SIGHUP without a restart */
#define CONF_SECRET 0x4u   /* value never printed: masked in --check-config, /admin/config, logs */

struct conf_table;

struct conf_key {
	const char *name;
	enum conf_type type;
	unsigned flags;
	size_t offset;
	const char *def;             /* default as it would be written in YAML; NULL = none */
	int64_t min, max;            /* bounds for INT/DURATION/SIZE; both 0 = unbounded */
	const char *const *values;   /* CONF_ENUM: NULL-terminated names */
	const struct conf_table *sub; /* SECTION / MAP / LIST element */
	const char *desc;            /* one or more sentences; printed in the reference config */
};

struct conf_errors;

struct conf_table {
	const char *name;            /* section name ("http") or element kind ("database") */
	const char *desc;            /* printed above the section in the reference config */
	const struct conf_key *keys; /* terminated by a key with name == NULL */
	size_t size;                 /* sizeof the struct the keys fill */
	/* Optional cross-key validation after defaults; report with conf_errorf. 0 = ok. */
	int (*validate)(void *obj, struct conf_errors *errs);
	/* Written commented out in the reference config (optional plugin sections). */
	bool reference_commented;
};

struct conf_strlist {
	char **items;
	size_t n;
};

struct conf_array {
	void *items; /* n elements of sub->size bytes */
	size_t n;
};

#define CONF_ARRAY_AT(arr, type, i) (&((type *)(arr)->items)[i])

/* Error list; every message is complete ("file:line:col: path.to.key: what is wrong"). */
struct conf_errors {
	char **msgs;
	size_t n;
	/* private: where the loader is, so validate callbacks can name keys */
	void *priv;
};

void conf_errors_init(struct conf_errors *e);
void conf_errors_deinit(struct conf_errors *e);
void conf_errors_print(const struct conf_errors *e, FILE *out);
/* Adds an error about `key` of `obj` (a struct the loader filled): the message gets the key's
 * path and file:line:column when the loader knows them. `key` may be NULL (the object itself). */
void conf_errorf(struct conf_errors *e, const void *obj, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* A loaded configuration: one filled struct per top-level section table. */
struct conf {
	char *path; /* file loaded, or NULL for the embedded default */
	size_t nsections;
	const struct conf_table *const *tables;
	void **sections; /* per table: filled struct (defaults applied), never NULL */
	bool *present;   /* per table: the section appeared in the file */
	void *priv;      /* private: positions for error messages */
};

/* Loads `path` against the top-level `tables`. On any error returns NULL with every error in
 * `errs` (the loader continues after an error to report as many as it can). */
struct conf *conf_load_file(const char *path, const struct conf_table *const *tables, size_t n,
			    struct conf_errors *errs);
/* Same from a string; `name` stands for the file name in messages. */
struct conf *conf_load_string(const char *name, const char *yaml, const struct conf_table *const *tables,
			      size_t n, struct conf_errors *errs);
void conf_destroy(struct conf *c);

void *conf_section(const struct conf *c, const char *name);
bool conf_section_present(const struct conf *c, const char *name);

/* Effective config with secrets masked ("********" when set). */
json_t *conf_to_json(const struct conf *c);
void conf_dump_yaml(const struct conf *c, FILE *out);
/* The reference config: every key of every table, commented, with defaults. */
void conf_write_reference(const struct conf_table *const *tables, size_t n, FILE *out);

/* Calls `cb` for each leaf key whose value differs between two configs loaded with the same
 * tables (including sections appearing or disappearing). Returns the number of changed keys
 * that are not CONF_RELOAD. */
typedef void (*conf_diff_fn)(const char *path, bool reloadable, void *arg);
size_t conf_diff(const struct conf *old, const struct conf *cur, conf_diff_fn cb, void *arg);

/* Scalar parsers, exposed for other modules and unit tests. Return 0 or -1 with `err` filled. */
int conf_parse_duration(const char *s, int64_t *ms, char *err, size_t errlen);
int conf_parse_size(const char *s, uint64_t *bytes, char *err, size_t errlen);
int conf_parse_bool(const char *s, bool *out);
/* Expands ${VAR} and ${VAR:-default}; "$$" is a literal "$". *out is malloc'd. */
int conf_expand_env(const char *in, char **out, char *err, size_t errlen);

#endif
