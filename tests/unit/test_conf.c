/* Unit tests for the config loader: every type, every error kind with its position, env
 * expansion, defaults in nested tables, secrets never echoed, reference round trip, diff. */
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "tap.h"

struct item {
	char *name;
	int64_t weight;
	char *token;
};

struct inner {
	bool flag;
	int64_t timeout;
};

struct sect {
	bool b;
	int64_t n;
	int64_t d;
	uint64_t sz;
	char *s;
	char *secret;
	int e;
	int mode;
	struct conf_strlist list;
	struct inner in;
	struct conf_array map;
	struct conf_array rules;
	char *req;
};

static const char *const colours[] = { "red", "green", "blue", NULL };

static const struct conf_key item_keys[] = {
	{ "weight", CONF_INT, CONF_RELOAD, offsetof(struct item, weight), "1", 1, 100, NULL, NULL, "w" },
	{ "token", CONF_STRING, CONF_SECRET, offsetof(struct item, token), NULL, 0, 0, NULL, NULL, "t" },
	{ NULL }
};
static const struct conf_table item_table = { .name = "item", .keys = item_keys, .size = sizeof(struct item) };

static const struct conf_key inner_keys[] = {
	{ "flag", CONF_BOOL, 0, offsetof(struct inner, flag), "yes", 0, 0, NULL, NULL, "f" },
	{ "timeout", CONF_DURATION, CONF_RELOAD, offsetof(struct inner, timeout), "30s", 0, 60000, NULL, NULL, "t" },
	{ NULL }
};
static const struct conf_table inner_table = { .name = "inner", .keys = inner_keys, .size = sizeof(struct inner) };

static int sect_validate(void *obj, struct conf_errors *errs)
{
	struct sect *s = obj;
	if (s->n == 13) {
		conf_errorf(errs, obj, "n", "unlucky");
		return -1;
	}
	return 0;
}

static const struct conf_key sect_keys[] = {
	{ "b", CONF_BOOL, CONF_RELOAD, offsetof(struct sect, b), "false", 0, 0, NULL, NULL, "a bool" },
	{ "n", CONF_INT, CONF_RELOAD, offsetof(struct sect, n), "5", 0, 100, NULL, NULL, "an int" },
	{ "d", CONF_DURATION, 0, offsetof(struct sect, d), "250ms", 0, 0, NULL, NULL, "a duration" },
	{ "sz", CONF_SIZE, 0, offsetof(struct sect, sz), "64KiB", 0, 0, NULL, NULL, "a size" },
	{ "s", CONF_STRING, 0, offsetof(struct sect, s), "${TCONF_HOME:-/home}/x", 0, 0, NULL, NULL, "a string" },
	{ "secret", CONF_STRING, CONF_SECRET | CONF_RELOAD, offsetof(struct sect, secret), NULL, 0, 0, NULL, NULL,
	  "a secret" },
	{ "e", CONF_ENUM, 0, offsetof(struct sect, e), "green", 0, 0, colours, NULL, "an enum" },
	{ "mode", CONF_FILEMODE, 0, offsetof(struct sect, mode), "0640", 0, 07777, NULL, NULL, "a mode" },
	{ "list", CONF_STRLIST, 0, offsetof(struct sect, list), "[\"a\", \"b\"]", 0, 0, NULL, NULL, "a list" },
	{ "in", CONF_SECTION, 0, offsetof(struct sect, in), NULL, 0, 0, NULL, &inner_table, "nested" },
	{ "map", CONF_MAP, CONF_RELOAD, offsetof(struct sect, map), NULL, 0, 0, NULL, &item_table, "a map" },
	{ "rules", CONF_LIST, 0, offsetof(struct sect, rules), NULL, 0, 0, NULL, &item_table, "a list of tables" },
	{ "req", CONF_STRING, CONF_REQUIRED, offsetof(struct sect, req), NULL, 0, 0, NULL, NULL, "required" },
	{ NULL }
};
static const struct conf_table sect_table = {
	.name = "main", .keys = sect_keys, .size = sizeof(struct sect), .validate = sect_validate
};
static const struct conf_key other_keys[] = {
	{ "x", CONF_INT, 0, 0, "7", 0, 0, NULL, NULL, "x" },
	{ NULL }
};
static const struct conf_table other_table = {
	.name = "other", .keys = other_keys, .size = sizeof(int64_t), .reference_commented = true
};
static const struct conf_table *const tables[] = { &sect_table, &other_table };

static struct conf_errors errs;

static struct conf *load(const char *yaml)
{
	conf_errors_deinit(&errs);
	conf_errors_init(&errs);
	return conf_load_string("t.yaml", yaml, tables, 2, &errs);
}

static const char *all_errors(void)
{
	static char buf[8192];
	buf[0] = '\0';
	for (size_t i = 0; i < errs.n; i++) {
		strncat(buf, errs.msgs[i], sizeof(buf) - strlen(buf) - 2);
		strcat(buf, "\n");
	}
	return buf;
}

static void diff_cb(const char *path, bool reloadable, void *arg)
{
	char *out = arg;
	strcat(out, path);
	strcat(out, reloadable ? "(r) " : "(x) ");
}

int main(void)
{
	char err[256];
	int64_t ms;
	uint64_t sz;
	bool b;
	conf_errors_init(&errs);

	/* scalars */
	ok(conf_parse_duration("250ms", &ms, err, sizeof(err)) == 0 && ms == 250, "250ms");
	ok(conf_parse_duration("30s", &ms, err, sizeof(err)) == 0 && ms == 30000, "30s");
	ok(conf_parse_duration("5m", &ms, err, sizeof(err)) == 0 && ms == 300000, "5m");
	ok(conf_parse_duration("1.5h", &ms, err, sizeof(err)) == 0 && ms == 5400000, "1.5h");
	ok(conf_parse_duration("0", &ms, err, sizeof(err)) == 0 && ms == 0, "bare 0");
	ok(conf_parse_duration("30", &ms, err, sizeof(err)) != 0, "30 without unit rejected");
	has_str(err, "needs a unit", "unitless error");
	ok(conf_parse_duration("-1s", &ms, err, sizeof(err)) != 0, "negative rejected");
	ok(conf_parse_duration("3 parsecs", &ms, err, sizeof(err)) != 0, "unknown unit rejected");
	ok(conf_parse_size("64KiB", &sz, err, sizeof(err)) == 0 && sz == 65536, "64KiB");
	ok(conf_parse_size("4MiB", &sz, err, sizeof(err)) == 0 && sz == 4194304, "4MiB");
	ok(conf_parse_size("1GiB", &sz, err, sizeof(err)) == 0 && sz == 1073741824, "1GiB");
	ok(conf_parse_size("10MB", &sz, err, sizeof(err)) == 0 && sz == 10000000, "10MB decimal");
	ok(conf_parse_size("512", &sz, err, sizeof(err)) == 0 && sz == 512, "plain bytes");
	ok(conf_parse_size("99999999999TiB", &sz, err, sizeof(err)) != 0, "overflow rejected");
	ok(conf_parse_size("1.5B", &sz, err, sizeof(err)) != 0, "fractional bytes rejected");
	ok(conf_parse_size("lots", &sz, err, sizeof(err)) != 0, "words rejected");
	ok(conf_parse_bool("Yes", &b) == 0 && b, "Yes");
	ok(conf_parse_bool("off", &b) == 0 && !b, "off");
	ok(conf_parse_bool("maybe", &b) != 0, "maybe rejected");

	char *out;
	setenv("TCONF_A", "alpha", 1);
	unsetenv("TCONF_MISSING");
	ok(conf_expand_env("x${TCONF_A}y", &out, err, sizeof(err)) == 0 && strcmp(out, "xalphay") == 0, "${VAR}");
	free(out);
	ok(conf_expand_env("${TCONF_MISSING:-dflt}", &out, err, sizeof(err)) == 0 && strcmp(out, "dflt") == 0,
	   "${VAR:-default}");
	free(out);
	ok(conf_expand_env("$${TCONF_A} $5", &out, err, sizeof(err)) == 0 && strcmp(out, "${TCONF_A} $5") == 0,
	   "$$ escapes");
	free(out);
	ok(conf_expand_env("${TCONF_MISSING}", &out, err, sizeof(err)) != 0, "missing variable is an error");
	has_str(err, "TCONF_MISSING", "error names the variable");
	ok(conf_expand_env("${TCONF_A", &out, err, sizeof(err)) != 0, "unterminated rejected");

	/* a full load with every type */
	setenv("TCONF_SECRET", "hunter2-very-secret", 1);
	struct conf *c = load("main:\n"
			      "  b: on\n"
			      "  n: 42\n"
			      "  d: 5m\n"
			      "  sz: 4MiB\n"
			      "  secret: ${TCONF_SECRET}\n"
			      "  e: blue\n"
			      "  mode: \"0600\"\n"
			      "  list: only-one\n"
			      "  in: {timeout: 2s}\n"
			      "  map:\n"
			      "    alpha: {weight: 3}\n"
			      "    beta: {}\n"
			      "  rules:\n"
			      "    - {weight: 9, token: t0k}\n"
			      "  req: here\n");
	ok(c != NULL, "valid config loads: %s", all_errors());
	struct sect *s = c ? conf_section(c, "main") : NULL;
	if (s) {
		ok(s->b && s->n == 42 && s->d == 300000 && s->sz == 4194304, "scalars");
		is_str(s->secret, "hunter2-very-secret", "secret expanded from env");
		is_int(s->e, 2, "enum index");
		is_int(s->mode, 0600, "file mode");
		ok(s->list.n == 1 && strcmp(s->list.items[0], "only-one") == 0, "scalar as one-element list");
		ok(s->in.flag && s->in.timeout == 2000, "nested default and value");
		is_str(s->s, "/home/x", "default with env default");
		is_int(s->map.n, 2, "map elements");
		struct item *it = CONF_ARRAY_AT(&s->map, struct item, 1);
		ok(strcmp(it->name, "beta") == 0 && it->weight == 1, "map element name and default");
		is_int(s->rules.n, 1, "list elements");
		ok(conf_section_present(c, "main") && !conf_section_present(c, "other"), "presence");
		ok(*(int64_t *)conf_section(c, "other") == 7, "absent section has defaults");
		json_t *j = conf_to_json(c);
		char *js = json_dumps(j, JSON_COMPACT);
		ok(strstr(js, "hunter2") == NULL && strstr(js, "t0k") == NULL, "secrets masked in JSON");
		has_str(js, "\"secret\":\"********\"", "mask shown");
		has_str(js, "\"d\":\"5m\"", "duration printed back");
		has_str(js, "\"sz\":\"4MiB\"", "size printed back");
		ok(strstr(js, "\"other\"") == NULL, "commented-out absent section omitted");
		free(js);
		json_decref(j);
		char *buf = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&buf, &len);
		conf_dump_yaml(c, f);
		fclose(f);
		ok(strstr(buf, "hunter2") == NULL, "secret masked in YAML dump");
		struct conf *again = load(buf);
		ok(again != NULL, "the YAML dump is itself a loadable config: %s", all_errors());
		conf_destroy(again);
		free(buf);
	}

	/* diff */
	struct conf *c2 = load("main:\n  b: off\n  d: 5m\n  sz: 4MiB\n  secret: other\n  e: blue\n  mode: \"0600\"\n"
			       "  list: only-one\n  in: {timeout: 2s}\n  map: {alpha: {weight: 3}, gamma: {}}\n"
			       "  rules: [{weight: 9, token: t0k}]\n  req: here\n  n: 42\n");
	ok(c2 != NULL, "second config loads: %s", all_errors());
	if (c && c2) {
		char paths[1024] = "";
		size_t restart = conf_diff(c, c2, diff_cb, paths);
		has_str(paths, "main.b(r)", "reloadable change reported");
		has_str(paths, "main.secret(r)", "secret change reported by path");
		has_str(paths, "main.map.beta(r)", "removed map element");
		has_str(paths, "main.map.gamma(r)", "added map element");
		ok(strstr(paths, "other") == NULL, "nothing else");
		is_int(restart, 0, "no restart needed");
		struct conf *c3 = load("main:\n  req: here\n  d: 1s\nother: {}\n");
		paths[0] = '\0';
		restart = conf_diff(c, c3, diff_cb, paths);
		has_str(paths, "main.d(x)", "non-reloadable change");
		has_str(paths, "other(x)", "section appearing needs a restart");
		ok(restart >= 2, "restart count");
		conf_destroy(c3);
	}
	conf_destroy(c);
	conf_destroy(c2);

	/* errors, each with its position */
	c = load("main:\n"
		 "  b: maybe\n"                /* 2:6 */
		 "  n: 1000\n"                 /* 3:6 out of range */
		 "  d: 10\n"                   /* 4:6 no unit */
		 "  sz: big\n"                 /* 5:7 */
		 "  e: purple\n"               /* 6:6 */
		 "  mode: 999\n"               /* 7:9 */
		 "  bogus: 1\n"                /* 8:3 unknown */
		 "  secret: [1]\n"             /* 9:11 wrong type */
		 "  in: {timeout: 2m}\n"       /* out of range nested */
		 "  map: {a: {weight: 0}}\n"   /* map element out of range */
		 "  list: {x: 1}\n"            /* mapping for list */
		 "  s: ${TCONF_MISSING}\n"     /* missing env */
		 "  b: true\n"                 /* duplicate */
		 "nosuch: 1\n");
	ok(c == NULL, "bad config rejected");
	const char *e = all_errors();
	has_str(e, "t.yaml:2:6: main.b: expected true or false", "bool error with position");
	has_str(e, "t.yaml:3:6: main.n: 1000 is out of range: must be from 0 to 100", "range error");
	has_str(e, "t.yaml:4:6: main.d: invalid value \"10\"", "duration error");
	has_str(e, "t.yaml:5:7: main.sz: invalid value \"big\"", "size error");
	has_str(e, "t.yaml:6:6: main.e: \"purple\" is not one of: red, green, blue", "enum error lists values");
	has_str(e, "t.yaml:7:9: main.mode", "mode error");
	has_str(e, "t.yaml:8:3: main.bogus: unknown key", "unknown key");
	has_str(e, "t.yaml:9:11: main.secret: expected a single value, got a list", "type error");
	has_str(e, "main.in.timeout: 2m is out of range", "nested range error");
	has_str(e, "main.map.a.weight: 0 is out of range", "map element error");
	has_str(e, "main.list: expected a list of values, got a mapping", "list type error");
	has_str(e, "main.s: environment variable TCONF_MISSING is not set", "env error names key and variable");
	has_str(e, "t.yaml:14:3: main.b: key given twice", "duplicate key");
	has_str(e, "t.yaml:15:1: nosuch: unknown section (this build knows: main, other)", "unknown section");
	has_str(e, "main.req: required key is missing", "missing required key");

	/* secrets are never echoed, even when wrong */
	c = load("main:\n  req: x\n  map: {a: {token: {nested: hunter3}}}\n");
	ok(c == NULL && strstr(all_errors(), "hunter3") == NULL, "secret value not echoed in errors");
	c = load("main:\n  req: x\n  n: 13\n");
	has_str(all_errors(), "t.yaml:3:6: main.n: unlucky", "validator error has key position");

	c = load("main: [1, 2\n");
	ok(c == NULL, "syntax error rejected");
	has_str(all_errors(), "t.yaml:", "syntax error has position");
	has_str(all_errors(), "YAML syntax error", "syntax error says so");
	c = load("- just a list\n");
	has_str(all_errors(), "must be a mapping of sections", "root must be a mapping");
	c = load("");
	ok(c != NULL && !conf_section_present(c, "main"), "empty file is valid");
	conf_destroy(c);
	c = load("# only comments\n");
	ok(c != NULL, "comment-only file is valid");
	conf_destroy(c);

	/* the reference config loads back */
	char *ref = NULL;
	size_t rlen = 0;
	FILE *f = open_memstream(&ref, &rlen);
	conf_write_reference(tables, 2, f);
	fclose(f);
	has_str(ref, "# a secret", "descriptions written");
	has_str(ref, "# other:", "optional section commented out");
	has_str(ref, "[required, restart]", "required marked");
	char *filled = malloc(rlen + 64);
	/* the only required key has no default: give it one to load the rest */
	snprintf(filled, rlen + 64, "%s", ref);
	char *p = strstr(filled, "  # req:");
	if (p)
		memcpy(p, "  req: x", 8);
	c = load(filled);
	ok(c != NULL, "reference config loads: %s", all_errors());
	conf_destroy(c);
	free(filled);
	free(ref);

	c = conf_load_file("/nonexistent/t.yaml", tables, 2, &errs);
	has_str(all_errors(), "/nonexistent/t.yaml: cannot open", "missing file error");
	conf_errors_deinit(&errs);
	return tap_done();
}
