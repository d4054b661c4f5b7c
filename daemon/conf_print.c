/* Printing configs: the effective config as JSON or YAML with secrets masked, the reference config
 * generated from the tables, and the key-by-key difference between two configs. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "conf_internal.h"

#define CONF_MASK "********"

void conf_format_value(enum conf_type type, int64_t v, char *buf, size_t len)
{
	if (type == CONF_DURATION) {
		static const struct {
			int64_t ms;
			const char *unit;
		} u[] = { { 86400000, "d" }, { 3600000, "h" }, { 60000, "m" }, { 1000, "s" } };
		for (size_t i = 0; i < sizeof(u) / sizeof(u[0]); i++) {
			if (v != 0 && v % u[i].ms == 0) {
				snprintf(buf, len, "%" PRId64 "%s", v / u[i].ms, u[i].unit);
				return;
			}
		}
		snprintf(buf, len, v == 0 ? "0s" : "%" PRId64 "ms", v);
		return;
	}
	if (type == CONF_SIZE) {
		static const struct {
			int64_t b;
			const char *unit;
		} u[] = { { 1LL << 40, "TiB" }, { 1LL << 30, "GiB" }, { 1LL << 20, "MiB" }, { 1LL << 10, "KiB" } };
		for (size_t i = 0; i < sizeof(u) / sizeof(u[0]); i++) {
			if (v != 0 && v % u[i].b == 0) {
				snprintf(buf, len, "%" PRId64 "%s", v / u[i].b, u[i].unit);
				return;
			}
		}
	}
	snprintf(buf, len, "%" PRId64, v);
}

/* --- JSON --- */

static json_t *conf_obj_json(const struct conf_table *t, const void *obj);

static json_t *conf_value_json(const struct conf_key *k, const void *field)
{
	char buf[64];
	switch (k->type) {
	case CONF_BOOL:
		return json_boolean(*(const bool *)field);
	case CONF_INT:
		return json_integer((json_int_t) * (const int64_t *)field);
	case CONF_DURATION:
		conf_format_value(k->type, *(const int64_t *)field, buf, sizeof(buf));
		return json_string(buf);
	case CONF_SIZE:
		conf_format_value(k->type, (int64_t) * (const uint64_t *)field, buf, sizeof(buf));
		return json_string(buf);
	case CONF_STRING: {
		const char *s = *(char *const *)field;
		if (!s)
			return json_null();
		return json_string(k->flags & CONF_SECRET ? CONF_MASK : s);
	}
	case CONF_ENUM:
		return json_string(k->values[*(const int *)field]);
	case CONF_FILEMODE:
		snprintf(buf, sizeof(buf), "%04o", *(const int *)field);
		return json_string(buf);
	case CONF_STRLIST: {
		const struct conf_strlist *l = field;
		json_t *a = json_array();
		for (size_t i = 0; i < l->n; i++)
			json_array_append_new(a, json_string(k->flags & CONF_SECRET ? CONF_MASK : l->items[i]));
		return a;
	}
	case CONF_SECTION:
		return conf_obj_json(k->sub, field);
	case CONF_MAP: {
		const struct conf_array *a = field;
		json_t *o = json_object();
		for (size_t i = 0; i < a->n; i++) {
			const char *elem = (const char *)a->items + i * k->sub->size;
			json_object_set_new(o, *(char *const *)elem, conf_obj_json(k->sub, elem));
		}
		return o;
	}
	case CONF_LIST: {
		const struct conf_array *a = field;
		json_t *arr = json_array();
		for (size_t i = 0; i < a->n; i++)
			json_array_append_new(arr, conf_obj_json(k->sub, (const char *)a->items + i * k->sub->size));
		return arr;
	}
	}
	return json_null();
}

static json_t *conf_obj_json(const struct conf_table *t, const void *obj)
{
	json_t *o = json_object();
	for (const struct conf_key *k = t->keys; k->name; k++)
		json_object_set_new(o, k->name, conf_value_json(k, (const char *)obj + k->offset));
	return o;
}

json_t *conf_to_json(const struct conf *c)
{
	json_t *o = json_object();
	for (size_t i = 0; i < c->nsections; i++)
		if (c->present[i] || !c->tables[i]->reference_commented)
			json_object_set_new(o, c->tables[i]->name, conf_obj_json(c->tables[i], c->sections[i]));
	return o;
}

/* --- YAML --- */

static void conf_yaml_scalar(FILE *out, json_t *v)
{
	if (json_is_string(v)) {
		char *s = json_dumps(v, JSON_ENCODE_ANY); /* a JSON string is a valid YAML scalar */
		fputs(s, out);
		free(s);
	} else if (json_is_null(v)) {
		fputs("null", out);
	} else {
		char *s = json_dumps(v, JSON_ENCODE_ANY);
		fputs(s, out);
		free(s);
	}
}

static void conf_yaml_value(FILE *out, json_t *v, int indent);

static void conf_yaml_object(FILE *out, json_t *o, int indent)
{
	const char *key;
	json_t *v;
	json_object_foreach(o, key, v)
	{
		fprintf(out, "%*s%s:", indent, "", key);
		conf_yaml_value(out, v, indent);
	}
}

static void conf_yaml_value(FILE *out, json_t *v, int indent)
{
	if (json_is_object(v)) {
		if (json_object_size(v) == 0) {
			fputs(" {}\n", out);
			return;
		}
		fputc('\n', out);
		conf_yaml_object(out, v, indent + 2);
	} else if (json_is_array(v)) {
		size_t i;
		json_t *it;
		bool scalars = true;
		json_array_foreach(v, i, it) scalars = scalars && !json_is_object(it) && !json_is_array(it);
		if (scalars) {
			fputs(" [", out);
			json_array_foreach(v, i, it)
			{
				if (i)
					fputs(", ", out);
				conf_yaml_scalar(out, it);
			}
			fputs("]\n", out);
			return;
		}
		fputc('\n', out);
		json_array_foreach(v, i, it)
		{
			fprintf(out, "%*s-\n", indent + 2, "");
			conf_yaml_object(out, it, indent + 4);
		}
	} else {
		fputc(' ', out);
		conf_yaml_scalar(out, v);
		fputc('\n', out);
	}
}

void conf_dump_yaml(const struct conf *c, FILE *out)
{
	json_t *o = conf_to_json(c);
	conf_yaml_object(out, o, 0);
	json_decref(o);
}

/* --- reference --- */

static void conf_ref_comment(FILE *out, int indent, const char *pre, const char *text)
{
	const int width = 96;
	const char *p = text;
	while (*p) {
		int room = width - indent - (int)strlen(pre) - 2;
		if (room < 30)
			room = 30;
		size_t n = strlen(p);
		if ((int)n > room) {
			n = (size_t)room;
			while (n > 0 && p[n] != ' ')
				n--;
			if (n == 0)
				n = (size_t)room;
		}
		fprintf(out, "%*s%s# %.*s\n", indent, "", pre, (int)n, p);
		p += n;
		while (*p == ' ')
			p++;
	}
}

static void conf_ref_table(FILE *out, const struct conf_table *t, int indent, const char *pre);

static void conf_ref_key(FILE *out, const struct conf_key *k, int indent, const char *pre)
{
	const char *how = k->flags & CONF_RELOAD ? "reloadable" : "restart";
	char note[256];
	snprintf(note, sizeof(note), "[%s%s%s]", k->flags & CONF_REQUIRED ? "required, " : "",
		 k->flags & CONF_SECRET ? "secret, " : "", how);
	fputc('\n', out);
	if (k->desc)
		conf_ref_comment(out, indent, pre, k->desc);
	if (k->type == CONF_ENUM) {
		char vals[256] = "";
		size_t off = 0;
		for (int i = 0; k->values[i] && off < sizeof(vals); i++)
			off += (size_t)snprintf(vals + off, sizeof(vals) - off, "%s%s", i ? " | " : "", k->values[i]);
		fprintf(out, "%*s%s# one of: %s\n", indent, "", pre, vals);
	}
	if ((k->type == CONF_INT || k->type == CONF_DURATION || k->type == CONF_SIZE) && (k->min || k->max)) {
		char lo[64], hi[64];
		conf_format_value(k->type, k->min, lo, sizeof(lo));
		conf_format_value(k->type, k->max, hi, sizeof(hi));
		fprintf(out, "%*s%s# range: %s .. %s\n", indent, "", pre, lo, hi);
	}
	fprintf(out, "%*s%s# %s\n", indent, "", pre, note);
	switch (k->type) {
	case CONF_SECTION:
		fprintf(out, "%*s%s%s:\n", indent, "", pre, k->name);
		conf_ref_table(out, k->sub, indent + 2, pre);
		return;
	case CONF_MAP:
		fprintf(out, "%*s%s# %s:\n", indent, "", pre, k->name);
		fprintf(out, "%*s%s#   <name>:\n", indent, "", pre);
		{
			char sub[64];
			snprintf(sub, sizeof(sub), "%s#     ", pre);
			conf_ref_table(out, k->sub, indent, sub);
		}
		return;
	case CONF_LIST:
		fprintf(out, "%*s%s# %s:\n", indent, "", pre, k->name);
		fprintf(out, "%*s%s#   -\n", indent, "", pre);
		{
			char sub[64];
			snprintf(sub, sizeof(sub), "%s#     ", pre);
			conf_ref_table(out, k->sub, indent, sub);
		}
		return;
	default:
		break;
	}
	if (k->def)
		fprintf(out, "%*s%s%s: %s\n", indent, "", pre, k->name, k->def);
	else
		fprintf(out, "%*s%s# %s:\n", indent, "", pre, k->name);
}

static void conf_ref_table(FILE *out, const struct conf_table *t, int indent, const char *pre)
{
	for (const struct conf_key *k = t->keys; k->name; k++)
		conf_ref_key(out, k, indent, pre);
}

void conf_write_reference(const struct conf_table *const *tables, size_t n, FILE *out)
{
	fputs("# tether reference configuration: every key with its default and what it does.\n"
	      "# Generated by `tetherd --print-reference-config` (make reference); do not edit by hand.\n"
	      "# Values may use ${VAR} or ${VAR:-default} from the environment. Durations: 250ms, 30s, 5m,\n"
	      "# 1h. Sizes: 512, 64KiB, 4MiB, 1GiB. [reloadable] keys change on SIGHUP; [restart] keys need\n"
	      "# a restart. Sections shown commented out are optional: a plugin runs only when its section\n"
	      "# is present.\n",
	      out);
	for (size_t i = 0; i < n; i++) {
		const struct conf_table *t = tables[i];
		const char *pre = t->reference_commented ? "# " : "";
		fputs("\n", out);
		if (t->desc)
			conf_ref_comment(out, 0, "", t->desc);
		fprintf(out, "%s%s:\n", pre, t->name);
		conf_ref_table(out, t, 2, pre);
	}
}

/* --- diff --- */

struct conf_diff_ctx {
	conf_diff_fn cb;
	void *arg;
	size_t restart;
};

static void conf_diff_report(struct conf_diff_ctx *d, const char *path, bool reloadable)
{
	if (!reloadable)
		d->restart++;
	if (d->cb)
		d->cb(path, reloadable, d->arg);
}

static bool conf_str_eq(const char *a, const char *b)
{
	return (a == NULL || b == NULL) ? a == b : strcmp(a, b) == 0;
}

static void conf_diff_obj(struct conf_diff_ctx *d, const struct conf_table *t, const void *a, const void *b,
			  const char *path);

static void conf_diff_key(struct conf_diff_ctx *d, const struct conf_key *k, const void *fa, const void *fb,
			  const char *kp)
{
	bool reload = k->flags & CONF_RELOAD;
	switch (k->type) {
	case CONF_BOOL:
		if (*(const bool *)fa != *(const bool *)fb)
			conf_diff_report(d, kp, reload);
		return;
	case CONF_INT:
	case CONF_DURATION:
	case CONF_SIZE:
		if (*(const int64_t *)fa != *(const int64_t *)fb)
			conf_diff_report(d, kp, reload);
		return;
	case CONF_ENUM:
	case CONF_FILEMODE:
		if (*(const int *)fa != *(const int *)fb)
			conf_diff_report(d, kp, reload);
		return;
	case CONF_STRING:
		if (!conf_str_eq(*(char *const *)fa, *(char *const *)fb))
			conf_diff_report(d, kp, reload);
		return;
	case CONF_STRLIST: {
		const struct conf_strlist *la = fa, *lb = fb;
		bool same = la->n == lb->n;
		for (size_t i = 0; same && i < la->n; i++)
			same = strcmp(la->items[i], lb->items[i]) == 0;
		if (!same)
			conf_diff_report(d, kp, reload);
		return;
	}
	case CONF_SECTION:
		conf_diff_obj(d, k->sub, fa, fb, kp);
		return;
	case CONF_MAP: {
		const struct conf_array *aa = fa, *ab = fb;
		char ep[1024];
		for (size_t i = 0; i < aa->n; i++) {
			const char *ea = (const char *)aa->items + i * k->sub->size;
			const char *eb = NULL;
			for (size_t j = 0; j < ab->n && !eb; j++) {
				const char *c = (const char *)ab->items + j * k->sub->size;
				if (strcmp(*(char *const *)c, *(char *const *)ea) == 0)
					eb = c;
			}
			if (snprintf(ep, sizeof(ep), "%s.%s", kp, *(char *const *)ea) >= (int)sizeof(ep))
				continue;
			if (eb)
				conf_diff_obj(d, k->sub, ea, eb, ep);
			else
				conf_diff_report(d, ep, reload);
		}
		for (size_t j = 0; j < ab->n; j++) {
			const char *eb = (const char *)ab->items + j * k->sub->size;
			bool found = false;
			for (size_t i = 0; i < aa->n && !found; i++)
				found = strcmp(*(char *const *)((const char *)aa->items + i * k->sub->size),
					       *(char *const *)eb) == 0;
			if (!found) {
				if (snprintf(ep, sizeof(ep), "%s.%s", kp, *(char *const *)eb) < (int)sizeof(ep))
					conf_diff_report(d, ep, reload);
			}
		}
		return;
	}
	case CONF_LIST: {
		const struct conf_array *aa = fa, *ab = fb;
		if (aa->n != ab->n) {
			conf_diff_report(d, kp, reload);
			return;
		}
		char ep[1024];
		for (size_t i = 0; i < aa->n; i++) {
			if (snprintf(ep, sizeof(ep), "%s[%zu]", kp, i) >= (int)sizeof(ep))
				continue;
			conf_diff_obj(d, k->sub, (const char *)aa->items + i * k->sub->size,
				      (const char *)ab->items + i * k->sub->size, ep);
		}
		return;
	}
	}
}

static void conf_diff_obj(struct conf_diff_ctx *d, const struct conf_table *t, const void *a, const void *b,
			  const char *path)
{
	for (const struct conf_key *k = t->keys; k->name; k++) {
		char kp[1024];
		if (snprintf(kp, sizeof(kp), "%s.%s", path, k->name) >= (int)sizeof(kp))
			continue;
		conf_diff_key(d, k, (const char *)a + k->offset, (const char *)b + k->offset, kp);
	}
}

size_t conf_diff(const struct conf *old, const struct conf *cur, conf_diff_fn cb, void *arg)
{
	struct conf_diff_ctx d = { cb, arg, 0 };
	for (size_t i = 0; i < old->nsections && i < cur->nsections; i++) {
		if (old->present[i] != cur->present[i])
			conf_diff_report(&d, old->tables[i]->name, false);
		else
			conf_diff_obj(&d, old->tables[i], old->sections[i], cur->sections[i], old->tables[i]->name);
	}
	return d.restart;
}
