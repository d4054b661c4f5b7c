/* Metrics registry: families of counters, gauges and histograms keyed by label values, plus
 * scrape-time collectors, rendered in the Prometheus text exposition format. */
#include "metrics.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

#define METRICS_MAX_LABELS 8

struct metric_series {
	struct metric_series *next;
	struct metric *family;
	char **values;
	double value;     /* counter / gauge */
	uint64_t *counts; /* histogram: per bucket (not cumulative), last = +Inf */
	double sum;
	uint64_t count;
};

struct metric {
	struct metric *next;
	char *name;
	char *help;
	enum metric_type type;
	size_t nlabels;
	char *labels[METRICS_MAX_LABELS];
	double *buckets;
	size_t nbuckets;
	struct metric_series *series;
	struct metric_series *series_tail;
};

struct metrics_collector {
	struct metrics_collector *next;
	metrics_collect_fn fn;
	void *arg;
};

struct metrics {
	struct metric *families;
	struct metric *families_tail;
	struct metrics_collector *collectors;
};

struct metrics_writer {
	struct evbuffer *out;
	/* names whose HELP/TYPE lines were written in this scrape */
	char **seen;
	size_t nseen, capseen;
};

static const double metrics_default_buckets[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
						  0.1,    0.25,  0.5,    1,     2.5,  5,     10 };

struct metrics *metrics_create(void)
{
	return calloc(1, sizeof(struct metrics));
}

static void metrics_series_free(struct metric *f, struct metric_series *s)
{
	for (size_t i = 0; i < f->nlabels; i++)
		free(s->values[i]);
	free(s->values);
	free(s->counts);
	free(s);
}

void metrics_destroy(struct metrics *m)
{
	if (!m)
		return;
	struct metric *f = m->families;
	while (f) {
		struct metric *fn = f->next;
		struct metric_series *s = f->series;
		while (s) {
			struct metric_series *sn = s->next;
			metrics_series_free(f, s);
			s = sn;
		}
		for (size_t i = 0; i < f->nlabels; i++)
			free(f->labels[i]);
		free(f->buckets);
		free(f->name);
		free(f->help);
		free(f);
		f = fn;
	}
	struct metrics_collector *c = m->collectors;
	while (c) {
		struct metrics_collector *cn = c->next;
		free(c);
		c = cn;
	}
	free(m);
}

static struct metric *metrics_family(struct metrics *m, enum metric_type type, const char *name, const char *help,
				     const char *labels, const double *buckets, size_t nbuckets)
{
	char full[256];
	snprintf(full, sizeof(full), "tether_%s", name);
	for (struct metric *f = m->families; f; f = f->next)
		if (strcmp(f->name, full) == 0)
			return f->type == type ? f : NULL;

	struct metric *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->name = strdup(full);
	f->help = strdup(help ? help : "");
	f->type = type;
	if (labels && *labels) {
		const char *p = labels;
		while (*p && f->nlabels < METRICS_MAX_LABELS) {
			size_t len = strcspn(p, ",");
			f->labels[f->nlabels++] = strndup(p, len);
			p += len;
			if (*p == ',')
				p++;
		}
	}
	if (type == METRIC_HISTOGRAM) {
		if (!buckets) {
			buckets = metrics_default_buckets;
			nbuckets = sizeof(metrics_default_buckets) / sizeof(metrics_default_buckets[0]);
		}
		f->buckets = malloc(nbuckets * sizeof(double));
		if (f->buckets)
			memcpy(f->buckets, buckets, nbuckets * sizeof(double));
		f->nbuckets = nbuckets;
	}
	if (m->families_tail)
		m->families_tail->next = f;
	else
		m->families = f;
	m->families_tail = f;
	return f;
}

struct metric *metrics_counter(struct metrics *m, const char *name, const char *help, const char *labels)
{
	return metrics_family(m, METRIC_COUNTER, name, help, labels, NULL, 0);
}

struct metric *metrics_gauge(struct metrics *m, const char *name, const char *help, const char *labels)
{
	return metrics_family(m, METRIC_GAUGE, name, help, labels, NULL, 0);
}

struct metric *metrics_histogram(struct metrics *m, const char *name, const char *help, const char *labels,
				 const double *buckets, size_t nbuckets)
{
	return metrics_family(m, METRIC_HISTOGRAM, name, help, labels, buckets, nbuckets);
}

struct metric_series *metrics_seriesv(struct metric *f, const char *const *values)
{
	if (!f)
		return NULL;
	for (struct metric_series *s = f->series; s; s = s->next) {
		size_t i = 0;
		while (i < f->nlabels && strcmp(s->values[i], values[i] ? values[i] : "") == 0)
			i++;
		if (i == f->nlabels)
			return s;
	}
	struct metric_series *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->family = f;
	s->values = calloc(f->nlabels ? f->nlabels : 1, sizeof(char *));
	for (size_t i = 0; i < f->nlabels; i++)
		s->values[i] = strdup(values[i] ? values[i] : "");
	if (f->type == METRIC_HISTOGRAM)
		s->counts = calloc(f->nbuckets + 1, sizeof(uint64_t));
	if (f->series_tail)
		f->series_tail->next = s;
	else
		f->series = s;
	f->series_tail = s;
	return s;
}

struct metric_series *metrics_series(struct metric *f, ...)
{
	if (!f)
		return NULL;
	const char *values[METRICS_MAX_LABELS] = { 0 };
	va_list ap;
	va_start(ap, f);
	for (size_t i = 0; i < f->nlabels; i++)
		values[i] = va_arg(ap, const char *);
	va_end(ap);
	return metrics_seriesv(f, values);
}

void metrics_add(struct metric_series *s, double v)
{
	if (s)
		s->value += v;
}

void metrics_set(struct metric_series *s, double v)
{
	if (s)
		s->value = v;
}

void metrics_observe(struct metric_series *s, double v)
{
	if (!s || !s->counts)
		return;
	const struct metric *f = s->family;
	size_t i = 0;
	while (i < f->nbuckets && v > f->buckets[i])
		i++;
	s->counts[i]++;
	s->sum += v;
	s->count++;
}

/* --- rendering --- */

static void metrics_escape(struct evbuffer *out, const char *s, bool help)
{
	for (; *s; s++) {
		if (*s == '\\')
			evbuffer_add(out, "\\\\", 2);
		else if (*s == '\n')
			evbuffer_add(out, "\\n", 2);
		else if (*s == '"' && !help)
			evbuffer_add(out, "\\\"", 2);
		else
			evbuffer_add(out, s, 1);
	}
}

static void metrics_value(struct evbuffer *out, double v)
{
	if (isnan(v))
		evbuffer_add_printf(out, "NaN\n");
	else if (isinf(v))
		evbuffer_add_printf(out, v > 0 ? "+Inf\n" : "-Inf\n");
	else if (v == (double)(int64_t)v && fabs(v) < 1e15)
		evbuffer_add_printf(out, "%lld\n", (long long)v);
	else {
		/* shortest form that reads back as the same double */
		char buf[40];
		snprintf(buf, sizeof(buf), "%.15g", v);
		if (strtod(buf, NULL) != v)
			snprintf(buf, sizeof(buf), "%.17g", v);
		evbuffer_add_printf(out, "%s\n", buf);
	}
}

static void metrics_labels(struct evbuffer *out, const struct metric *f, const struct metric_series *s,
			   const char *extra_name, const char *extra_value)
{
	if (f->nlabels == 0 && !extra_name)
		return;
	evbuffer_add(out, "{", 1);
	for (size_t i = 0; i < f->nlabels; i++) {
		evbuffer_add_printf(out, "%s%s=\"", i ? "," : "", f->labels[i]);
		metrics_escape(out, s->values[i], false);
		evbuffer_add(out, "\"", 1);
	}
	if (extra_name)
		evbuffer_add_printf(out, "%s%s=\"%s\"", f->nlabels ? "," : "", extra_name, extra_value);
	evbuffer_add(out, "}", 1);
}

static const char *const metrics_type_names[] = { "counter", "gauge", "histogram" };

static bool metrics_writer_seen(struct metrics_writer *w, const char *name)
{
	for (size_t i = 0; i < w->nseen; i++)
		if (strcmp(w->seen[i], name) == 0)
			return true;
	if (w->nseen == w->capseen) {
		size_t cap = w->capseen ? w->capseen * 2 : 16;
		char **n = realloc(w->seen, cap * sizeof(char *));
		if (!n)
			return false;
		w->seen = n;
		w->capseen = cap;
	}
	w->seen[w->nseen++] = strdup(name);
	return false;
}

void metrics_write(struct metrics_writer *w, const char *name, const char *type, const char *help,
		   const char *const *kv, double value)
{
	char full[256];
	snprintf(full, sizeof(full), "tether_%s", name);
	if (!metrics_writer_seen(w, full)) {
		evbuffer_add_printf(w->out, "# HELP %s ", full);
		metrics_escape(w->out, help ? help : "", true);
		evbuffer_add_printf(w->out, "\n# TYPE %s %s\n", full, type);
	}
	evbuffer_add_printf(w->out, "%s", full);
	if (kv && kv[0]) {
		evbuffer_add(w->out, "{", 1);
		for (size_t i = 0; kv[i] && kv[i + 1]; i += 2) {
			evbuffer_add_printf(w->out, "%s%s=\"", i ? "," : "", kv[i]);
			metrics_escape(w->out, kv[i + 1], false);
			evbuffer_add(w->out, "\"", 1);
		}
		evbuffer_add(w->out, "}", 1);
	}
	evbuffer_add(w->out, " ", 1);
	metrics_value(w->out, value);
}

void metrics_render(struct metrics *m, struct evbuffer *out)
{
	for (struct metric *f = m->families; f; f = f->next) {
		evbuffer_add_printf(out, "# HELP %s ", f->name);
		metrics_escape(out, f->help, true);
		evbuffer_add_printf(out, "\n# TYPE %s %s\n", f->name, metrics_type_names[f->type]);
		for (struct metric_series *s = f->series; s; s = s->next) {
			if (f->type != METRIC_HISTOGRAM) {
				evbuffer_add_printf(out, "%s", f->name);
				metrics_labels(out, f, s, NULL, NULL);
				evbuffer_add(out, " ", 1);
				metrics_value(out, s->value);
				continue;
			}
			uint64_t cum = 0;
			char le[32];
			for (size_t i = 0; i <= f->nbuckets; i++) {
				cum += s->counts[i];
				if (i < f->nbuckets)
					snprintf(le, sizeof(le), "%g", f->buckets[i]);
				else
					snprintf(le, sizeof(le), "+Inf");
				evbuffer_add_printf(out, "%s_bucket", f->name);
				metrics_labels(out, f, s, "le", le);
				evbuffer_add_printf(out, " %llu\n", (unsigned long long)cum);
			}
			evbuffer_add_printf(out, "%s_sum", f->name);
			metrics_labels(out, f, s, NULL, NULL);
			evbuffer_add(out, " ", 1);
			metrics_value(out, s->sum);
			evbuffer_add_printf(out, "%s_count", f->name);
			metrics_labels(out, f, s, NULL, NULL);
			evbuffer_add_printf(out, " %llu\n", (unsigned long long)s->count);
		}
	}
	struct metrics_writer w = { .out = out };
	for (struct metrics_collector *c = m->collectors; c; c = c->next)
		c->fn(&w, c->arg);
	for (size_t i = 0; i < w.nseen; i++)
		free(w.seen[i]);
	free(w.seen);
}

void metrics_collector_add(struct metrics *m, metrics_collect_fn fn, void *arg)
{
	struct metrics_collector *c = calloc(1, sizeof(*c));
	if (!c)
		return;
	c->fn = fn;
	c->arg = arg;
	struct metrics_collector **pp = &m->collectors;
	while (*pp)
		pp = &(*pp)->next;
	*pp = c;
}

void metrics_collector_remove(struct metrics *m, metrics_collect_fn fn, void *arg)
{
	for (struct metrics_collector **pp = &m->collectors; *pp; pp = &(*pp)->next) {
		if ((*pp)->fn == fn && (*pp)->arg == arg) {
			struct metrics_collector *c = *pp;
			*pp = c->next;
			free(c);
			return;
		}
	}
}
