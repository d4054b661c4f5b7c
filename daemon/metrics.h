/* Metrics registry in Prometheus text format: counters, gauges and histograms with labels, plus
 * collectors that report current values at scrape time. Single-threaded (the event loop). */
#ifndef TETHER_METRICS_H
#define TETHER_METRICS_H

#include <stddef.h>

struct evbuffer;
struct metrics;
struct metric;        /* one family: name, help, type, label names */
struct metric_series; /* one set of label values in a family */

struct metrics *metrics_create(void);
void metrics_destroy(struct metrics *m);

/* Families. `name` gets the "tether_" prefix. `labels` is a comma-separated list of label names
 * or NULL. Registering the same name twice returns the existing family (types must agree). */
struct metric *metrics_counter(struct metrics *m, const char *name, const char *help, const char *labels);
struct metric *metrics_gauge(struct metrics *m, const char *name, const char *help, const char *labels);
/* `buckets` are upper bounds in ascending order (+Inf is implicit); NULL = latency defaults
 * in seconds (0.0005 .. 10). */
struct metric *metrics_histogram(struct metrics *m, const char *name, const char *help, const char *labels,
				 const double *buckets, size_t nbuckets);

/* The series for the given label values (as many as the family has labels). Created on first
 * use; keep the pointer on hot paths. Values are copied. */
struct metric_series *metrics_series(struct metric *f, ...);
struct metric_series *metrics_seriesv(struct metric *f, const char *const *values);

void metrics_add(struct metric_series *s, double v);     /* counter, gauge */
void metrics_set(struct metric_series *s, double v);     /* gauge */
void metrics_observe(struct metric_series *s, double v); /* histogram */

/* Collectors run at scrape time and emit current values (pool sizes, seconds to expiry...). */
struct metrics_writer;
typedef void (*metrics_collect_fn)(struct metrics_writer *w, void *arg);
void metrics_collector_add(struct metrics *m, metrics_collect_fn fn, void *arg);
void metrics_collector_remove(struct metrics *m, metrics_collect_fn fn, void *arg);
/* Writes one sample; type is "gauge" or "counter"; `kv` is NULL-terminated label name/value pairs.
 * HELP/TYPE lines are written once per name per scrape. */
void metrics_write(struct metrics_writer *w, const char *name, const char *type, const char *help,
		   const char *const *kv, double value);

void metrics_render(struct metrics *m, struct evbuffer *out);

#endif
