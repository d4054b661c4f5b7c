/* Unit tests for the metrics registry's Prometheus text output. */
#include <stdlib.h>

#include <event2/buffer.h>

#include "metrics.h"
#include "tap.h"

static char *render(struct metrics *m)
{
	struct evbuffer *b = evbuffer_new();
	metrics_render(m, b);
	size_t n = evbuffer_get_length(b);
	char *s = malloc(n + 1);
	evbuffer_remove(b, s, n);
	s[n] = '\0';
	evbuffer_free(b);
	return s;
}

static void collect(struct metrics_writer *w, void *arg)
{
	const char *kv[] = { "pool", "app\"db", NULL };
	metrics_write(w, "pool_clients", "gauge", "Clients.", kv, 3);
	metrics_write(w, "pool_clients", "gauge", "Clients.", NULL, 4);
}

int main(void)
{
	struct metrics *m = metrics_create();
	struct metric *c = metrics_counter(m, "requests_total", "Requests.", "route,code");
	ok(metrics_counter(m, "requests_total", "x", "route,code") == c, "same family returned twice");
	ok(metrics_gauge(m, "requests_total", "x", NULL) == NULL, "type clash refused");
	struct metric_series *s = metrics_series(c, "/healthz", "200");
	ok(metrics_series(c, "/healthz", "200") == s, "same series for the same labels");
	metrics_add(s, 2);
	metrics_add(metrics_series(c, "/x", "404"), 1);
	struct metric *h = metrics_histogram(m, "latency_seconds", "Latency.", "route", NULL, 0);
	struct metric_series *hs = metrics_series(h, "/a");
	metrics_observe(hs, 0.0007);
	metrics_observe(hs, 3);
	metrics_observe(hs, 100);
	struct metric *g = metrics_gauge(m, "up", "Up.", NULL);
	metrics_set(metrics_series(g), 1.5);
	metrics_collector_add(m, collect, NULL);

	char *out = render(m);
	has_str(out, "# HELP tether_requests_total Requests.\n# TYPE tether_requests_total counter\n",
		"help and type lines");
	has_str(out, "tether_requests_total{route=\"/healthz\",code=\"200\"} 2\n", "counter with labels");
	has_str(out, "tether_requests_total{route=\"/x\",code=\"404\"} 1\n", "second series");
	has_str(out, "tether_latency_seconds_bucket{route=\"/a\",le=\"0.0005\"} 0\n", "first bucket");
	has_str(out, "tether_latency_seconds_bucket{route=\"/a\",le=\"0.001\"} 1\n", "cumulative bucket");
	has_str(out, "tether_latency_seconds_bucket{route=\"/a\",le=\"5\"} 2\n", "bucket 5");
	has_str(out, "tether_latency_seconds_bucket{route=\"/a\",le=\"+Inf\"} 3\n", "+Inf bucket");
	has_str(out, "tether_latency_seconds_count{route=\"/a\"} 3\n", "count");
	has_str(out, "tether_latency_seconds_sum{route=\"/a\"} 103.0007", "sum");
	has_str(out, "tether_up 1.5\n", "gauge without labels");
	has_str(out, "tether_pool_clients{pool=\"app\\\"db\"} 3\n", "collector value with escaped label");
	has_str(out, "tether_pool_clients 4\n", "collector value without labels");
	const char *first = strstr(out, "# TYPE tether_pool_clients");
	ok(first && !strstr(first + 1, "# TYPE tether_pool_clients"), "collector TYPE line written once");
	free(out);
	metrics_collector_remove(m, collect, NULL);
	out = render(m);
	ok(!strstr(out, "pool_clients"), "collector removed");
	free(out);
	metrics_destroy(m);
	return tap_done();
}
