/* The config loader: walks a libyaml document against declarative tables, fills the structs,
 * applies defaults, runs validators, and reports every error with key path and file:line:col. */
#include "conf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "conf_internal.h"

struct conf_objrec {
	const void *obj;
	const struct conf_table *t;
	char *path;
	int line, col;
	int *keyline, *keycol; /* per key index; 0 = not given */
};

struct conf_ctx {
	const char *file;
	struct conf_errors *errs;
	yaml_document_t *doc;
	struct conf_objrec *recs;
	size_t nrecs, caprecs;
	bool in_default;
};

/* --- errors --- */

void conf_errors_init(struct conf_errors *e)
{
	memset(e, 0, sizeof(*e));
}

void conf_errors_deinit(struct conf_errors *e)
{
	for (size_t i = 0; i < e->n; i++)
		free(e->msgs[i]);
	free(e->msgs);
	memset(e, 0, sizeof(*e));
}

void conf_errors_print(const struct conf_errors *e, FILE *out)
{
	for (size_t i = 0; i < e->n; i++)
		fprintf(out, "%s\n", e->msgs[i]);
}

static void conf_errors_addv(struct conf_errors *e, const char *prefix, const char *fmt, va_list ap)
{
	char msg[1024];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	char *line;
	if (asprintf(&line, "%s%s", prefix, msg) < 0)
		return;
	char **n = realloc(e->msgs, (e->n + 1) * sizeof(char *));
	if (!n) {
		free(line);
		return;
	}
	e->msgs = n;
	e->msgs[e->n++] = line;
}

static void conf_err_at(struct conf_ctx *ctx, const yaml_mark_t *mark, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void conf_err_at(struct conf_ctx *ctx, const yaml_mark_t *mark, const char *path, const char *fmt, ...)
{
	char prefix[1200];
	if (ctx->in_default)
		snprintf(prefix, sizeof(prefix), "built-in default: %s: ", path ? path : "");
	else if (mark)
		snprintf(prefix, sizeof(prefix), "%s:%zu:%zu: %s%s", ctx->file, mark->line + 1, mark->column + 1,
			 path ? path : "", path && *path ? ": " : "");
	else
		snprintf(prefix, sizeof(prefix), "%s: %s%s", ctx->file, path ? path : "", path && *path ? ": " : "");
	va_list ap;
	va_start(ap, fmt);
	conf_errors_addv(ctx->errs, prefix, fmt, ap);
	va_end(ap);
}

static size_t conf_nkeys(const struct conf_table *t)
{
	size_t n = 0;
	while (t->keys[n].name)
		n++;
	return n;
}

void conf_errorf(struct conf_errors *e, const void *obj, const char *key, const char *fmt, ...)
{
	struct conf_ctx *ctx = e->priv;
	char prefix[1200] = "";
	if (ctx) {
		for (size_t i = ctx->nrecs; i-- > 0;) {
			struct conf_objrec *r = &ctx->recs[i];
			if (r->obj != obj)
				continue;
			int line = r->line, col = r->col;
			if (key) {
				for (size_t k = 0; r->t->keys[k].name; k++) {
					if (strcmp(r->t->keys[k].name, key) == 0 && r->keyline[k]) {
						line = r->keyline[k];
						col = r->keycol[k];
					}
				}
			}
			const char *sep = *r->path && key ? "." : "";
			if (line)
				snprintf(prefix, sizeof(prefix), "%s:%d:%d: %s%s%s: ", ctx->file, line, col, r->path, sep,
					 key ? key : "");
			else
				snprintf(prefix, sizeof(prefix), "%s: %s%s%s: ", ctx->file, r->path, sep, key ? key : "");
			break;
		}
	}
	if (!*prefix && key)
		snprintf(prefix, sizeof(prefix), "%s: ", key);
	va_list ap;
	va_start(ap, fmt);
	conf_errors_addv(e, prefix, fmt, ap);
	va_end(ap);
}

/* --- loading --- */

static size_t conf_rec_add(struct conf_ctx *ctx, const void *obj, const struct conf_table *t, const char *path,
			   const yaml_node_t *node)
{
	if (ctx->nrecs == ctx->caprecs) {
		size_t cap = ctx->caprecs ? ctx->caprecs * 2 : 32;
		struct conf_objrec *n = realloc(ctx->recs, cap * sizeof(*n));
		if (!n)
			abort();
		ctx->recs = n;
		ctx->caprecs = cap;
	}
	struct conf_objrec *r = &ctx->recs[ctx->nrecs];
	memset(r, 0, sizeof(*r));
	r->obj = obj;
	r->t = t;
	r->path = strdup(path);
	size_t nk = conf_nkeys(t);
	r->keyline = calloc(nk + 1, sizeof(int));
	r->keycol = calloc(nk + 1, sizeof(int));
	if (node && !ctx->in_default) {
		r->line = (int)node->start_mark.line + 1;
		r->col = (int)node->start_mark.column + 1;
	}
	return ctx->nrecs++;
}

static bool conf_node_is_null(const yaml_node_t *n)
{
	if (!n)
		return true;
	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	const char *v = (const char *)n->data.scalar.value;
	return *v == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
	       strcmp(v, "NULL") == 0;
}

static const char *conf_node_kind(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_MAPPING_NODE:
		return "a mapping";
	case YAML_SEQUENCE_NODE:
		return "a list";
	default:
		return "a single value";
	}
}

static void conf_fill(struct conf_ctx *ctx, const struct conf_table *t, void *obj, yaml_node_t *node,
		      const char *path, bool validate);

/* Parses one scalar (already env-expanded) into the field for `k`. */
static int conf_set_scalar(struct conf_ctx *ctx, const struct conf_key *k, void *field, const char *v,
			   const yaml_mark_t *mark, const char *path)
{
	char err[256];
	bool secret = k->flags & CONF_SECRET;
	switch (k->type) {
	case CONF_BOOL:
		if (conf_parse_bool(v, field) != 0) {
			conf_err_at(ctx, mark, path, "expected true or false%s%s%s", secret ? "" : ", got \"",
				    secret ? "" : v, secret ? "" : "\"");
			return -1;
		}
		return 0;
	case CONF_INT:
	case CONF_DURATION:
	case CONF_SIZE: {
		int64_t iv = 0;
		uint64_t uv = 0;
		int rc;
		if (k->type == CONF_INT) {
			char *end;
			errno = 0;
			long long ll = strtoll(v, &end, 10);
			rc = (*v && *end == '\0' && errno == 0) ? 0 : -1;
			if (rc)
				snprintf(err, sizeof(err), "expected a whole number");
			iv = ll;
		} else if (k->type == CONF_DURATION) {
			rc = conf_parse_duration(v, &iv, err, sizeof(err));
		} else {
			rc = conf_parse_size(v, &uv, err, sizeof(err));
			iv = uv > INT64_MAX ? INT64_MAX : (int64_t)uv;
		}
		if (rc != 0) {
			if (secret)
				conf_err_at(ctx, mark, path, "invalid value: %s", err);
			else
				conf_err_at(ctx, mark, path, "invalid value \"%s\": %s", v, err);
			return -1;
		}
		if ((k->min || k->max) && (iv < k->min || iv > k->max)) {
			char lo[64], hi[64];
			conf_format_value(k->type, k->min, lo, sizeof(lo));
			conf_format_value(k->type, k->max, hi, sizeof(hi));
			if (secret)
				conf_err_at(ctx, mark, path, "out of range: must be from %s to %s", lo, hi);
			else
				conf_err_at(ctx, mark, path, "%s is out of range: must be from %s to %s", v, lo, hi);
			return -1;
		}
		if (k->type == CONF_SIZE)
			*(uint64_t *)field = uv;
		else
			*(int64_t *)field = iv;
		return 0;
	}
	case CONF_STRING:
		free(*(char **)field);
		*(char **)field = strdup(v);
		return 0;
	case CONF_ENUM:
		for (int i = 0; k->values[i]; i++) {
			if (strcmp(k->values[i], v) == 0) {
				*(int *)field = i;
				return 0;
			}
		}
		{
			char allowed[512] = "";
			size_t off = 0;
			for (int i = 0; k->values[i] && off < sizeof(allowed); i++)
				off += (size_t)snprintf(allowed + off, sizeof(allowed) - off, "%s%s", i ? ", " : "",
							k->values[i]);
			conf_err_at(ctx, mark, path, "\"%s\" is not one of: %s", secret ? "(hidden)" : v, allowed);
		}
		return -1;
	case CONF_FILEMODE: {
		char *end;
		errno = 0;
		long m = strtol(v, &end, 8);
		if (!*v || *end || errno || m < 0 || m > 07777) {
			conf_err_at(ctx, mark, path, "expected an octal file mode such as \"0660\", got \"%s\"", v);
			return -1;
		}
		*(int *)field = (int)m;
		return 0;
	}
	default:
		return -1;
	}
}

static char *conf_expand_node(struct conf_ctx *ctx, const struct conf_key *k, yaml_node_t *n, const char *path)
{
	char err[512];
	char *v;
	if (conf_expand_env((const char *)n->data.scalar.value, &v, err, sizeof(err)) != 0) {
		conf_err_at(ctx, &n->start_mark, path, "%s", err);
		return NULL;
	}
	(void)k;
	return v;
}

static void conf_set_value(struct conf_ctx *ctx, const struct conf_key *k, void *field, yaml_node_t *n,
			   const char *path)
{
	switch (k->type) {
	case CONF_STRLIST: {
		struct conf_strlist *l = field;
		for (size_t i = 0; i < l->n; i++)
			free(l->items[i]);
		free(l->items);
		l->items = NULL;
		l->n = 0;
		if (conf_node_is_null(n))
			return;
		if (n->type == YAML_SCALAR_NODE) {
			char *v = conf_expand_node(ctx, k, n, path);
			if (!v)
				return;
			l->items = malloc(sizeof(char *));
			l->items[0] = v;
			l->n = 1;
			return;
		}
		if (n->type != YAML_SEQUENCE_NODE) {
			conf_err_at(ctx, &n->start_mark, path, "expected a list of values, got %s", conf_node_kind(n));
			return;
		}
		size_t cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
		l->items = calloc(cnt ? cnt : 1, sizeof(char *));
		for (size_t i = 0; i < cnt; i++) {
			yaml_node_t *it = yaml_document_get_node(ctx->doc, n->data.sequence.items.start[i]);
			if (!it || it->type != YAML_SCALAR_NODE) {
				conf_err_at(ctx, it ? &it->start_mark : &n->start_mark, path,
					    "list item %zu: expected a single value, got %s", i, it ? conf_node_kind(it) : "nothing");
				continue;
			}
			char *v = conf_expand_node(ctx, k, it, path);
			if (v)
				l->items[l->n++] = v;
		}
		return;
	}
	case CONF_SECTION:
		conf_fill(ctx, k->sub, field, n, path, true);
		return;
	case CONF_MAP:
	case CONF_LIST: {
		struct conf_array *a = field;
		conf_free_array(k, a);
		if (conf_node_is_null(n))
			return;
		bool map = k->type == CONF_MAP;
		if (n->type != (map ? YAML_MAPPING_NODE : YAML_SEQUENCE_NODE)) {
			conf_err_at(ctx, &n->start_mark, path, "expected %s, got %s", map ? "a mapping" : "a list",
				    conf_node_kind(n));
			return;
		}
		size_t cnt = map ? (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start)
				 : (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
		/* Allocated once: validators keep pointers to elements. */
		a->items = calloc(cnt ? cnt : 1, k->sub->size);
		if (!a->items)
			return;
		for (size_t i = 0; i < cnt; i++) {
			char *elem = (char *)a->items + a->n * k->sub->size;
			char sub[1024];
			yaml_node_t *val;
			if (map) {
				yaml_node_pair_t *p = &n->data.mapping.pairs.start[i];
				yaml_node_t *kn = yaml_document_get_node(ctx->doc, p->key);
				val = yaml_document_get_node(ctx->doc, p->value);
				if (!kn || kn->type != YAML_SCALAR_NODE) {
					conf_err_at(ctx, kn ? &kn->start_mark : &n->start_mark, path,
						    "names must be single values");
					continue;
				}
				const char *name = (const char *)kn->data.scalar.value;
				bool dup = false;
				for (size_t j = 0; j < a->n; j++)
					if (strcmp(*(char **)((char *)a->items + j * k->sub->size), name) == 0)
						dup = true;
				if (dup) {
					conf_err_at(ctx, &kn->start_mark, path, "\"%s\" appears twice", name);
					continue;
				}
				*(char **)elem = strdup(name);
				snprintf(sub, sizeof(sub), "%s.%s", path, name);
			} else {
				val = yaml_document_get_node(ctx->doc, n->data.sequence.items.start[i]);
				snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
			}
			a->n++;
			conf_fill(ctx, k->sub, elem, val, sub, true);
		}
		return;
	}
	default:
		if (n->type != YAML_SCALAR_NODE) {
			conf_err_at(ctx, &n->start_mark, path, "expected a single value, got %s", conf_node_kind(n));
			return;
		}
		if (conf_node_is_null(n) && k->type != CONF_STRING) {
			conf_err_at(ctx, &n->start_mark, path, "a value is needed");
			return;
		}
		char *v = conf_expand_node(ctx, k, n, path);
		if (!v)
			return;
		if (k->type == CONF_STRING && conf_node_is_null(n)) {
			free(*(char **)field);
			*(char **)field = NULL;
		} else {
			conf_set_scalar(ctx, k, field, v, &n->start_mark, path);
		}
		free(v);
	}
}

static void conf_set_default(struct conf_ctx *ctx, const struct conf_key *k, void *field, const char *path)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	yaml_parser_initialize(&parser);
	yaml_parser_set_input_string(&parser, (const unsigned char *)k->def, strlen(k->def));
	if (!yaml_parser_load(&parser, &doc)) {
		bool saved = ctx->in_default;
		ctx->in_default = true;
		conf_err_at(ctx, NULL, path, "unparsable default \"%s\"", k->def);
		ctx->in_default = saved;
		yaml_parser_delete(&parser);
		return;
	}
	yaml_document_t *saved_doc = ctx->doc;
	bool saved = ctx->in_default;
	ctx->doc = &doc;
	ctx->in_default = true;
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	if (root)
		conf_set_value(ctx, k, field, root, path);
	ctx->doc = saved_doc;
	ctx->in_default = saved;
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
}

static void conf_fill(struct conf_ctx *ctx, const struct conf_table *t, void *obj, yaml_node_t *node,
		      const char *path, bool validate)
{
	size_t ri = conf_rec_add(ctx, obj, t, path, node);
	size_t nk = conf_nkeys(t);
	bool *seen = calloc(nk + 1, sizeof(bool));
	if (!seen)
		return;
	if (node && !conf_node_is_null(node)) {
		if (node->type != YAML_MAPPING_NODE) {
			conf_err_at(ctx, &node->start_mark, path, "expected a mapping of keys, got %s", conf_node_kind(node));
			free(seen);
			return;
		}
		for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; p++) {
			yaml_node_t *kn = yaml_document_get_node(ctx->doc, p->key);
			yaml_node_t *vn = yaml_document_get_node(ctx->doc, p->value);
			if (!kn || kn->type != YAML_SCALAR_NODE) {
				conf_err_at(ctx, kn ? &kn->start_mark : &node->start_mark, path, "keys must be single values");
				continue;
			}
			const char *name = (const char *)kn->data.scalar.value;
			char kp[1024];
			snprintf(kp, sizeof(kp), "%s%s%s", path, *path ? "." : "", name);
			size_t i = 0;
			while (i < nk && strcmp(t->keys[i].name, name) != 0)
				i++;
			if (i == nk) {
				conf_err_at(ctx, &kn->start_mark, kp, "unknown key");
				continue;
			}
			if (seen[i]) {
				conf_err_at(ctx, &kn->start_mark, kp, "key given twice");
				continue;
			}
			seen[i] = true;
			ctx->recs[ri].keyline[i] = (int)vn->start_mark.line + 1;
			ctx->recs[ri].keycol[i] = (int)vn->start_mark.column + 1;
			conf_set_value(ctx, &t->keys[i], (char *)obj + t->keys[i].offset, vn, kp);
		}
	}
	for (size_t i = 0; i < nk; i++) {
		if (seen[i])
			continue;
		const struct conf_key *k = &t->keys[i];
		char kp[1024];
		snprintf(kp, sizeof(kp), "%s%s%s", path, *path ? "." : "", k->name);
		if (k->type == CONF_SECTION)
			conf_fill(ctx, k->sub, (char *)obj + k->offset, NULL, kp, validate && node != NULL);
		else if (k->def)
			conf_set_default(ctx, k, (char *)obj + k->offset, kp);
		else if ((k->flags & CONF_REQUIRED) && validate)
			conf_err_at(ctx, node && !ctx->in_default ? &node->start_mark : NULL, kp, "required key is missing");
	}
	free(seen);
	if (validate && t->validate)
		t->validate(obj, ctx->errs);
}

static struct conf *conf_load_parser(const char *name, yaml_parser_t *parser, const struct conf_table *const *tables,
				     size_t n, struct conf_errors *errs)
{
	struct conf *c = calloc(1, sizeof(*c));
	struct conf_ctx ctx = { .file = name, .errs = errs };
	size_t errs_before = errs->n;
	yaml_document_t doc;
	bool have_doc = false;
	c->nsections = n;
	c->tables = tables;
	c->sections = calloc(n ? n : 1, sizeof(void *));
	c->present = calloc(n ? n : 1, sizeof(bool));
	for (size_t i = 0; i < n; i++)
		c->sections[i] = calloc(1, tables[i]->size);

	if (!yaml_parser_load(parser, &doc)) {
		yaml_mark_t m = parser->problem_mark;
		conf_err_at(&ctx, &m, "", "YAML syntax error: %s%s%s", parser->problem ? parser->problem : "unknown",
			    parser->context ? " " : "", parser->context ? parser->context : "");
		goto done;
	}
	have_doc = true;
	ctx.doc = &doc;
	errs->priv = &ctx;
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	if (root && !conf_node_is_null(root)) {
		if (root->type != YAML_MAPPING_NODE) {
			conf_err_at(&ctx, &root->start_mark, "", "the config must be a mapping of sections, got %s",
				    conf_node_kind(root));
			root = NULL;
		}
	} else {
		root = NULL;
	}
	yaml_node_t **given = calloc(n ? n : 1, sizeof(yaml_node_t *));
	for (yaml_node_pair_t *p = root ? root->data.mapping.pairs.start : NULL; root && p < root->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *kn = yaml_document_get_node(&doc, p->key);
		if (!kn || kn->type != YAML_SCALAR_NODE) {
			conf_err_at(&ctx, kn ? &kn->start_mark : NULL, "", "section names must be single values");
			continue;
		}
		const char *sname = (const char *)kn->data.scalar.value;
		size_t i = 0;
		while (i < n && strcmp(tables[i]->name, sname) != 0)
			i++;
		if (i == n) {
			char known[512] = "";
			size_t off = 0;
			for (size_t j = 0; j < n && off < sizeof(known); j++)
				off += (size_t)snprintf(known + off, sizeof(known) - off, "%s%s", j ? ", " : "",
							tables[j]->name);
			conf_err_at(&ctx, &kn->start_mark, sname, "unknown section (this build knows: %s)", known);
			continue;
		}
		if (c->present[i]) {
			conf_err_at(&ctx, &kn->start_mark, sname, "section given twice");
			continue;
		}
		c->present[i] = true;
		given[i] = yaml_document_get_node(&doc, p->value);
	}
	for (size_t i = 0; i < n; i++)
		conf_fill(&ctx, tables[i], c->sections[i], given[i], tables[i]->name, c->present[i]);
	free(given);
	errs->priv = NULL;
done:
	for (size_t i = 0; i < ctx.nrecs; i++) {
		free(ctx.recs[i].path);
		free(ctx.recs[i].keyline);
		free(ctx.recs[i].keycol);
	}
	free(ctx.recs);
	if (have_doc)
		yaml_document_delete(&doc);
	if (errs->n > errs_before) {
		conf_destroy(c);
		return NULL;
	}
	c->path = strdup(name);
	return c;
}

struct conf *conf_load_string(const char *name, const char *yaml, const struct conf_table *const *tables, size_t n,
			      struct conf_errors *errs)
{
	yaml_parser_t parser;
	yaml_parser_initialize(&parser);
	yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, strlen(yaml));
	struct conf *c = conf_load_parser(name, &parser, tables, n, errs);
	yaml_parser_delete(&parser);
	return c;
}

struct conf *conf_load_file(const char *path, const struct conf_table *const *tables, size_t n,
			    struct conf_errors *errs)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		struct conf_ctx ctx = { .file = path, .errs = errs };
		conf_err_at(&ctx, NULL, "", "cannot open: %s", strerror(errno));
		return NULL;
	}
	yaml_parser_t parser;
	yaml_parser_initialize(&parser);
	yaml_parser_set_input_file(&parser, f);
	struct conf *c = conf_load_parser(path, &parser, tables, n, errs);
	yaml_parser_delete(&parser);
	fclose(f);
	return c;
}

/* --- freeing and lookup --- */

void conf_free_array(const struct conf_key *k, struct conf_array *a)
{
	for (size_t i = 0; i < a->n; i++) {
		char *elem = (char *)a->items + i * k->sub->size;
		if (k->type == CONF_MAP)
			free(*(char **)elem);
		conf_free_obj(k->sub, elem);
	}
	free(a->items);
	a->items = NULL;
	a->n = 0;
}

void conf_free_obj(const struct conf_table *t, void *obj)
{
	for (const struct conf_key *k = t->keys; k->name; k++) {
		void *field = (char *)obj + k->offset;
		switch (k->type) {
		case CONF_STRING:
			free(*(char **)field);
			*(char **)field = NULL;
			break;
		case CONF_STRLIST: {
			struct conf_strlist *l = field;
			for (size_t i = 0; i < l->n; i++)
				free(l->items[i]);
			free(l->items);
			l->items = NULL;
			l->n = 0;
			break;
		}
		case CONF_SECTION:
			conf_free_obj(k->sub, field);
			break;
		case CONF_MAP:
		case CONF_LIST:
			conf_free_array(k, field);
			break;
		default:
			break;
		}
	}
}

void conf_destroy(struct conf *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nsections; i++) {
		if (c->sections && c->sections[i]) {
			conf_free_obj(c->tables[i], c->sections[i]);
			free(c->sections[i]);
		}
	}
	free(c->sections);
	free(c->present);
	free(c->path);
	free(c);
}

static ssize_t conf_index(const struct conf *c, const char *name)
{
	for (size_t i = 0; i < c->nsections; i++)
		if (strcmp(c->tables[i]->name, name) == 0)
			return (ssize_t)i;
	return -1;
}

void *conf_section(const struct conf *c, const char *name)
{
	ssize_t i = conf_index(c, name);
	return i < 0 ? NULL : c->sections[i];
}

bool conf_section_present(const struct conf *c, const char *name)
{
	ssize_t i = conf_index(c, name);
	return i >= 0 && c->present[i];
}
