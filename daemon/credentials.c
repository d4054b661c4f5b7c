/* The token cache and its API (see credentials.h): one cache per scope set or audience, each
 * with at most one fetch in flight, a refresh timer ahead of expiry, backoff after failures,
 * and a FIFO of waiters each bounded by fetch_timeout. Callbacks only ever run from the loop. */
#include "credentials_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <openssl/crypto.h>

#include "http_client.h"
#include "loopclock.h"
#include "log.h"
#include "metrics.h"

/* A FIFO of waiters, oldest first. */
struct cred_wait_list {
	struct credentials_wait *head, *tail;
	size_t n;
};

struct cred_cache {
	struct credentials *cr;
	struct cred_cache *next;
	bool id;         /* ID token for audience `key`, else access token for scopes `key` */
	bool keep_fresh; /* the default scopes with prefetch: refreshed even when unused */
	char *key;
	char *token;
	struct cred_timing t;
	bool fetching;
	struct cred_fetch *fetch;
	bool kick; /* fetch soon even without waiters (token_now miss, invalidate, prefetch) */
	bool used; /* asked for since the last fetch started: worth refreshing */
	int failures; /* consecutive */
	int64_t next_attempt; /* monotonic ms; no fetch starts before */
	char *last_error;
	int64_t last_error_at, last_success_at;
	uint64_t refreshes, nfailures;
	struct event *timer;
	struct cred_wait_list waiters; /* queued for the next token */
	char what[300]; /* "an access token from ..." for messages */
};

struct credentials_wait {
	struct credentials *cr;
	struct cred_cache *cache; /* NULL when `error` is all there is to say */
	credentials_token_fn cb;
	void *arg;
	struct event *ev; /* first look, then the deadline while queued */
	int64_t deadline;
	uint64_t seq;
	struct cred_wait_list *list; /* the cache's queue once queued, else cr->pending */
	bool queued;
	char *error;
	struct credentials_wait *prev, *next;
};

struct credentials {
	struct event_base *base;
	struct http_client *http;
	struct metrics *metrics;
	struct cred_source src;
	char *default_scopes;
	int64_t refresh_ahead, fetch_timeout, backoff_initial, backoff_max;
	bool prefetch;
	struct cred_cache *caches, *default_cache;
	size_t ncaches;
	char *memo_scopes; /* the last scopes string looked up, as given, and its cache: the */
	struct cred_cache *memo_cache; /* forwarders ask with the same string every request */
	struct cred_wait_list pending; /* waiters before their first look */
	uint64_t seq;
	struct metric *m_failures;
	struct metric_series *m_refresh_access, *m_refresh_id, *m_wait_timeouts;
};

/* Each scope set or audience keeps a cache for the process's life: bounded against callers that
 * derive them from input. */
#define CRED_MAX_CACHES 256

static const struct log_src cred_log = { "credentials", 0 };

static int64_t cred_now(void)
{
	return loopclock_now_ms();
}

static double cred_rand(void)
{
	return (double)arc4random() / 4294967296.0;
}

static void cred_secret_free(char *s)
{
	if (s) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

struct http_client *credentials_http(struct credentials *cr)
{
	return cr->http;
}

static void cred_cache_schedule(struct cred_cache *c);

/* --- waiters --- */

static void cred_wait_link(struct credentials_wait *w, struct cred_wait_list *l)
{
	w->list = l;
	w->next = NULL;
	w->prev = l->tail;
	if (l->tail)
		l->tail->next = w;
	else
		l->head = w;
	l->tail = w;
	l->n++;
}

static void cred_wait_unlink(struct credentials_wait *w)
{
	struct cred_wait_list *l = w->list;
	if (!l)
		return;
	if (w->prev)
		w->prev->next = w->next;
	else
		l->head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		l->tail = w->prev;
	w->prev = w->next = NULL;
	w->list = NULL;
	w->queued = false;
	l->n--;
}

static void cred_wait_free(struct credentials_wait *w)
{
	cred_wait_unlink(w);
	if (w->ev)
		event_free(w->ev);
	free(w->error);
	free(w);
}

/* Ends a waiter: frees it, then calls back (so a callback cannot touch its own handle). */
static void cred_wait_deliver(struct credentials_wait *w, const char *token, const char *error)
{
	credentials_token_fn cb = w->cb;
	void *arg = w->arg;
	cred_wait_free(w);
	cb(arg, token, error);
}

static void cred_wait_failf(struct credentials_wait *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void cred_wait_failf(struct credentials_wait *w, const char *fmt, ...)
{
	char msg[1200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cred_wait_deliver(w, NULL, msg);
}

static void cred_fmt_duration(int64_t ms, char *buf, size_t len)
{
	if (ms % 1000 == 0)
		snprintf(buf, len, "%llds", (long long)(ms / 1000));
	else
		snprintf(buf, len, "%.1fs", (double)ms / 1000.0);
}

/* A queued waiter's deadline passed. */
static void cred_wait_timeout(struct credentials_wait *w)
{
	struct credentials *cr = w->cr;
	struct cred_cache *c = w->cache;
	char d[32], detail[700];
	cred_fmt_duration(cr->fetch_timeout, d, sizeof(d));
	if (c->last_error && c->failures > 0)
		snprintf(detail, sizeof(detail), "%s; last error: %s", d, c->last_error);
	else
		snprintf(detail, sizeof(detail), "%s; the fetch is still in progress", d);
	if (cr->m_wait_timeouts)
		metrics_add(cr->m_wait_timeouts, 1);
	cred_wait_unlink(w);
	cred_wait_failf(w, "timed out waiting for %s after %s", c->what, detail);
}

/* The first look at the cache, from the loop: hand out a good token, fail at once when no fetch
 * can happen before the deadline, or queue. */
static void cred_wait_first_look(struct credentials_wait *w)
{
	struct cred_cache *c = w->cache;
	int64_t now = cred_now();
	if (credentials_timing_usable(&c->t, now)) {
		char *tok = strdup(c->token);
		cred_wait_deliver(w, tok, tok ? NULL : "out of memory");
		cred_secret_free(tok);
		return;
	}
	if (!c->fetching && c->failures > 0 && c->next_attempt >= w->deadline) {
		char detail[700];
		snprintf(detail, sizeof(detail), "%s (next attempt in %llds)", c->last_error ? c->last_error : "failed",
			 (long long)((c->next_attempt - now + 999) / 1000));
		cred_wait_failf(w, "cannot get %s", detail);
		return;
	}
	cred_wait_unlink(w); /* from cr->pending */
	cred_wait_link(w, &c->waiters);
	w->queued = true;
	int64_t left = w->deadline - now;
	if (left < 0)
		left = 0;
	struct timeval tv = { (time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000 };
	evtimer_add(w->ev, &tv);
	cred_cache_schedule(c);
}

static void cred_wait_on_event(evutil_socket_t fd, short what, void *arg)
{
	struct credentials_wait *w = arg;
	if (w->error) {
		char *error = w->error; /* freed with the waiter, before the callback */
		w->error = NULL;
		cred_wait_deliver(w, NULL, error);
		free(error);
	} else if (!w->queued)
		cred_wait_first_look(w);
	else
		cred_wait_timeout(w);
}

void credentials_wait_cancel(struct credentials_wait *w)
{
	if (w)
		cred_wait_free(w);
}

/* --- the cache --- */

static void cred_cache_fetch(struct cred_cache *c);

static void cred_cache_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct cred_cache *c = arg;
	if (c->fetching)
		return;
	if (cred_now() < c->next_attempt) {
		cred_cache_schedule(c);
		return;
	}
	cred_cache_fetch(c);
}

/* Arms the cache's timer for the next fetch it should make, if any. */
static void cred_cache_schedule(struct cred_cache *c)
{
	struct credentials *cr = c->cr;
	if (c->fetching || cr->src.kind == CRED_SOURCE_NONE) {
		evtimer_del(c->timer);
		return;
	}
	int64_t now = cred_now(), at = CRED_NEVER;
	bool have = c->t.expires != 0;
	if (c->waiters.n || c->kick || (!credentials_timing_usable(&c->t, now) && c->used))
		at = now;
	else if (have && c->t.expires != CRED_NEVER && (c->used || c->keep_fresh))
		at = c->t.refresh;
	else if (!have && c->keep_fresh && c->failures > 0)
		at = now; /* the default token keeps being retried (with backoff) until one arrives */
	if (at == CRED_NEVER) {
		evtimer_del(c->timer);
		return;
	}
	if (at < c->next_attempt)
		at = c->next_attempt;
	int64_t d = at > now ? at - now : 0;
	struct timeval tv = { (time_t)(d / 1000), (suseconds_t)(d % 1000) * 1000 };
	evtimer_add(c->timer, &tv);
}

static void cred_cache_done(struct cred_cache *c, struct cred_result *res)
{
	struct credentials *cr = c->cr;
	int64_t now = cred_now();
	c->fetching = false;
	c->fetch = NULL;
	uint64_t limit = cr->seq;
	char *tok = NULL;
	if (res->token) {
		bool recovered = c->failures > 0 || c->refreshes == 0;
		cred_secret_free(c->token);
		c->token = res->token;
		res->token = NULL;
		credentials_timing_set(&c->t, now, res->expires_in_ms, cr->refresh_ahead, cred_rand());
		c->failures = 0;
		c->next_attempt = 0;
		c->refreshes++;
		c->last_success_at = now;
		if (cr->metrics)
			metrics_add(c->id ? cr->m_refresh_id : cr->m_refresh_access, 1);
		if (c->t.expires == CRED_NEVER) {
			log_info(&cred_log, "using %s", c->what);
		} else if (recovered) {
			log_info(&cred_log, "obtained %s for %s%s (expires in %llds, refresh in %llds)", c->what,
				 c->id ? "audience " : "scopes ", c->key, (long long)(res->expires_in_ms / 1000),
				 (long long)((c->t.refresh - now) / 1000));
		} else {
			log_debug(&cred_log, "refreshed %s for %s (expires in %llds)", c->what, c->key,
				  (long long)(res->expires_in_ms / 1000));
		}
		tok = strdup(c->token);
	} else {
		c->failures++;
		c->nfailures++;
		free(c->last_error);
		c->last_error = strdup(res->error);
		c->last_error_at = now;
		int64_t backoff = credentials_backoff_ms(c->failures, cr->backoff_initial, cr->backoff_max, cred_rand());
		c->next_attempt = now + backoff;
		if (cr->metrics)
			metrics_add(metrics_series(cr->m_failures, res->reason ? res->reason : "internal"), 1);
		bool valid = credentials_timing_valid(&c->t, now);
		log_warn(&cred_log, "cannot get %s (failure %d in a row; next attempt in %.1fs%s)", res->error,
			 c->failures, (double)backoff / 1000.0,
			 valid ? "; the current token stays in use until it expires" : "");
		/* The old token is kept while it is still valid: better than an error. */
		if (valid)
			tok = strdup(c->token);
	}
	/* Deliver to the waiters queued before now (callbacks may add new ones or cancel others). */
	struct credentials_wait *w;
	while ((w = c->waiters.head) != NULL && w->seq < limit) {
		if (tok) {
			cred_wait_deliver(w, tok, NULL);
		} else if (w->deadline <= c->next_attempt) {
			char detail[700];
			snprintf(detail, sizeof(detail), "%s (next attempt in %.1fs)", c->last_error,
				 (double)(c->next_attempt - now) / 1000.0);
			cred_wait_failf(w, "cannot get %s", detail);
		} else {
			break; /* it can still be served by the next attempt */
		}
	}
	cred_secret_free(tok);
	cred_cache_schedule(c);
}

void credentials_fetch_finished(struct cred_cache *cache, struct cred_result *res)
{
	cred_cache_done(cache, res);
	cred_secret_free(res->token);
	res->token = NULL;
}

static void cred_cache_fetch(struct cred_cache *c)
{
	struct credentials *cr = c->cr;
	struct cred_result res = { 0 };
	c->fetching = true;
	c->kick = false;
	c->used = false;
	evtimer_del(c->timer);
	int rc = credentials_fetch_start(cr, c, &cr->src, c->id, c->key, cr->fetch_timeout, &c->fetch, &res);
	if (rc == 1)
		credentials_fetch_finished(c, &res);
}

static struct cred_cache *cred_cache_find(struct credentials *cr, bool id, const char *key)
{
	for (struct cred_cache *c = cr->caches; c; c = c->next)
		if (c->id == id && strcmp(c->key, key) == 0)
			return c;
	return NULL;
}

static struct cred_cache *cred_cache_get_key(struct credentials *cr, bool id, const char *key)
{
	struct cred_cache *c = cred_cache_find(cr, id, key);
	if (c)
		return c;
	if (cr->ncaches >= CRED_MAX_CACHES) {
		log_warn(&cred_log, "more than %d distinct scope sets and audiences asked for; refusing %s",
			 CRED_MAX_CACHES, key);
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c || !(c->key = strdup(key)) || !(c->timer = evtimer_new(cr->base, cred_cache_on_timer, c))) {
		if (c)
			free(c->key);
		free(c);
		return NULL;
	}
	c->cr = cr;
	c->id = id;
	credentials_fetch_describe(&cr->src, id, c->what, sizeof(c->what));
	c->next = cr->caches;
	cr->caches = c;
	cr->ncaches++;
	return c;
}

/* The cache for a caller's scopes (NULL/"" = the configured ones). */
static struct cred_cache *cred_cache_for_scopes(struct credentials *cr, const char *scopes)
{
	if (!scopes || !*scopes)
		return cr->default_cache;
	if (cr->memo_scopes && strcmp(cr->memo_scopes, scopes) == 0)
		return cr->memo_cache; /* (caches live as long as cr) */
	char *key = credentials_scopes_normalize(scopes);
	if (!key)
		return NULL;
	struct cred_cache *c = *key ? cred_cache_get_key(cr, false, key) : cr->default_cache;
	free(key);
	char *memo = c ? strdup(scopes) : NULL;
	if (memo) {
		free(cr->memo_scopes);
		cr->memo_scopes = memo;
		cr->memo_cache = c;
	}
	return c;
}

/* --- API --- */

static struct credentials_wait *cred_wait_new(struct credentials *cr, credentials_token_fn cb, void *arg)
{
	struct credentials_wait *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->ev = event_new(cr->base, -1, 0, cred_wait_on_event, w);
	if (!w->ev) {
		free(w);
		return NULL;
	}
	w->cr = cr;
	w->cb = cb;
	w->arg = arg;
	w->seq = cr->seq++;
	w->deadline = cred_now() + cr->fetch_timeout;
	cred_wait_link(w, &cr->pending);
	return w;
}

static struct credentials_wait *cred_get(struct credentials *cr, struct cred_cache *c, const char *error,
					 credentials_token_fn cb, void *arg)
{
	struct credentials_wait *w = cred_wait_new(cr, cb, arg);
	if (!w)
		return NULL;
	if (cr->src.kind == CRED_SOURCE_NONE || !c) {
		char msg[300];
		if (cr->src.kind == CRED_SOURCE_NONE)
			snprintf(msg, sizeof(msg), "no credentials configured (%s)", cr->src.origin);
		else
			snprintf(msg, sizeof(msg), "%s", error);
		w->error = strdup(msg);
		if (!w->error) {
			cred_wait_free(w);
			return NULL;
		}
	} else {
		w->cache = c;
		c->used = true;
	}
	event_active(w->ev, EV_TIMEOUT, 0);
	return w;
}

struct credentials_wait *credentials_get_token(struct credentials *cr, const char *scopes, credentials_token_fn cb,
					       void *arg)
{
	struct cred_cache *c = cr->src.kind == CRED_SOURCE_NONE ? NULL : cred_cache_for_scopes(cr, scopes);
	return cred_get(cr, c, cr->ncaches >= CRED_MAX_CACHES ? "too many distinct scope sets in use" : "out of memory",
			cb, arg);
}

struct credentials_wait *credentials_get_id_token(struct credentials *cr, const char *audience,
						  credentials_token_fn cb, void *arg)
{
	struct cred_cache *c = NULL;
	const char *err = "out of memory";
	if (!audience || !*audience)
		err = "an ID token needs an audience";
	else if (cr->src.kind != CRED_SOURCE_NONE && !(c = cred_cache_get_key(cr, true, audience)) &&
		 cr->ncaches >= CRED_MAX_CACHES)
		err = "too many distinct audiences in use";
	return cred_get(cr, c, err, cb, arg);
}

const char *credentials_token_now(struct credentials *cr, const char *scopes)
{
	if (cr->src.kind == CRED_SOURCE_NONE)
		return NULL;
	struct cred_cache *c = cred_cache_for_scopes(cr, scopes);
	if (!c)
		return NULL;
	c->used = true;
	if (credentials_timing_usable(&c->t, cred_now()))
		return c->token;
	if (!c->fetching) {
		/* (a fetch under way will answer; kicking now would start a second right after it) */
		c->kick = true;
		cred_cache_schedule(c);
	}
	return NULL;
}

void credentials_invalidate(struct credentials *cr, const char *scopes, const char *token)
{
	if (cr->src.kind == CRED_SOURCE_NONE || cr->src.kind == CRED_SOURCE_STATIC)
		return;
	struct cred_cache *c = cred_cache_for_scopes(cr, scopes);
	if (!c || !c->token || (token && strcmp(token, c->token) != 0))
		return;
	cred_secret_free(c->token);
	c->token = NULL;
	memset(&c->t, 0, sizeof(c->t));
	log_info(&cred_log, "dropped the cached token for scopes %s; the next request fetches a new one", c->key);
	if (c->keep_fresh)
		c->kick = true;
	cred_cache_schedule(c);
}

bool credentials_configured(const struct credentials *cr)
{
	return cr && cr->src.kind != CRED_SOURCE_NONE;
}

const char *credentials_source_name(const struct credentials *cr)
{
	return credentials_source_kind_name(cr ? cr->src.kind : CRED_SOURCE_NONE);
}

const char *credentials_email(const struct credentials *cr)
{
	return cr ? cr->src.email : NULL;
}

bool credentials_ready(struct credentials *cr, char *reason, size_t len)
{
	if (!credentials_configured(cr)) {
		snprintf(reason, len, "no credentials configured");
		return false;
	}
	struct cred_cache *c = cr->default_cache;
	if (credentials_timing_valid(&c->t, cred_now()))
		return true;
	if (c->last_error && c->failures > 0)
		snprintf(reason, len, "no valid token: %s", c->last_error);
	else
		snprintf(reason, len, "no token obtained yet");
	return false;
}

static double cred_secs(int64_t ms)
{
	return (double)ms / 1000.0;
}

json_t *credentials_status(struct credentials *cr)
{
	int64_t now = cred_now();
	json_t *tokens = json_array();
	for (struct cred_cache *c = cr->caches; c; c = c->next) {
		json_t *o = json_pack("{s:s,s:s,s:b,s:b,s:b,s:I,s:I,s:i,s:b,s:I}", "kind", c->id ? "id" : "access",
				      c->id ? "audience" : "scopes", c->key, "default", c == cr->default_cache, "valid",
				      credentials_timing_valid(&c->t, now), "usable", credentials_timing_usable(&c->t, now),
				      "refreshes", (json_int_t)c->refreshes, "failures", (json_int_t)c->nfailures,
				      "consecutive_failures", c->failures, "fetching", c->fetching, "waiters",
				      (json_int_t)c->waiters.n);
		if (!o)
			continue;
		if (c->t.expires == CRED_NEVER) {
			json_object_set_new(o, "expires_in", json_null());
		} else if (c->t.expires) {
			json_object_set_new(o, "expires_in", json_real(cred_secs(c->t.expires - now)));
			json_object_set_new(o, "lifetime", json_real(cred_secs(c->t.expires - c->t.obtained)));
			json_object_set_new(o, "refresh_in", json_real(cred_secs(c->t.refresh - now)));
		}
		if (c->last_success_at)
			json_object_set_new(o, "last_refresh_age", json_real(cred_secs(now - c->last_success_at)));
		if (c->last_error) {
			json_object_set_new(o, "last_error", json_string(c->last_error));
			json_object_set_new(o, "last_error_age", json_real(cred_secs(now - c->last_error_at)));
		}
		if (c->next_attempt > now && !c->fetching)
			json_object_set_new(o, "next_attempt_in", json_real(cred_secs(c->next_attempt - now)));
		json_array_append_new(tokens, o);
	}
	json_t *st = json_pack("{s:s,s:b,s:s?,s:s?,s:s?,s:s?,s:b,s:s,s:o}", "source",
			       credentials_source_kind_name(cr->src.kind), "configured", credentials_configured(cr),
			       "origin", cr->src.origin, "email", cr->src.email, "metadata_url", cr->src.metadata_url,
			       "token_uri", cr->src.token_uri, "self_signed_jwt", cr->src.self_signed_jwt,
			       "default_scopes", cr->default_scopes ? cr->default_scopes : "", "tokens", tokens);
	return st;
}

static void cred_collect(struct metrics_writer *mw, void *arg)
{
	struct credentials *cr = arg;
	int64_t now = cred_now();
	size_t waiters = 0;
	for (struct cred_cache *c = cr->caches; c; c = c->next) {
		waiters += c->waiters.n;
		if (!c->t.expires || c->t.expires == CRED_NEVER)
			continue;
		const char *kv[] = { "kind", c->id ? "id" : "access", "key", c->key, NULL };
		metrics_write(mw, "credentials_token_expiry_seconds", "gauge",
			      "Seconds until the cached token expires (negative: expired), per scope set or audience.",
			      kv, cred_secs(c->t.expires - now));
	}
	metrics_write(mw, "credentials_waiters", "gauge", "Requests waiting for a token.", NULL, (double)waiters);
}

struct credentials *credentials_create(struct event_base *base, struct http_client *http, struct metrics *metrics,
				       const struct credentials_conf *conf)
{
	struct credentials *cr = calloc(1, sizeof(*cr));
	char err[1024] = "out of memory";
	if (!cr)
		goto fail;
	cr->base = base;
	cr->http = http;
	cr->metrics = metrics;
	if (credentials_source_resolve(conf, &cr->src, err, sizeof(err)) != 0) {
		free(cr);
		cr = NULL;
		goto fail;
	}
	if (conf) {
		cr->refresh_ahead = conf->refresh_ahead;
		cr->fetch_timeout = conf->fetch_timeout;
		cr->backoff_initial = conf->backoff_initial;
		cr->backoff_max = conf->backoff_max;
		cr->prefetch = conf->prefetch;
		size_t len = 1;
		for (size_t i = 0; i < conf->scopes.n; i++)
			len += strlen(conf->scopes.items[i]) + 1;
		char *joined = calloc(1, len);
		for (size_t i = 0; joined && i < conf->scopes.n; i++) {
			strcat(joined, conf->scopes.items[i]);
			strcat(joined, " ");
		}
		cr->default_scopes = joined ? credentials_scopes_normalize(joined) : NULL;
		free(joined);
		if (!cr->default_scopes)
			goto fail_cr;
		if (conf->self_signed_jwt && !cr->src.self_signed_jwt)
			log_warn(&cred_log, "credentials.self_signed_jwt applies to service account keys only; the %s "
					    "credentials fetch tokens as usual",
				 credentials_source_kind_name(cr->src.kind));
	} else {
		cr->fetch_timeout = 10000;
		cr->backoff_initial = 1000;
		cr->backoff_max = 30000;
		cr->default_scopes = strdup("");
	}
	if (cr->src.kind != CRED_SOURCE_NONE && cr->src.kind != CRED_SOURCE_STATIC && !http) {
		snprintf(err, sizeof(err), "the %s credentials need the upstream HTTP client",
			 credentials_source_kind_name(cr->src.kind));
		goto fail_cr;
	}
	cr->default_cache = cred_cache_get_key(cr, false, cr->default_scopes ? cr->default_scopes : "");
	if (!cr->default_cache)
		goto fail_cr;
	cr->default_cache->keep_fresh = cr->prefetch;
	if (metrics) {
		struct metric *ref = metrics_counter(metrics, "credentials_refreshes_total",
						     "Tokens obtained (access or ID token).", "kind");
		cr->m_failures = metrics_counter(metrics, "credentials_refresh_failures_total",
						 "Failed token fetches by reason (transport, http_4xx, http_5xx, "
						 "bad_response, internal).",
						 "reason");
		struct metric *to = metrics_counter(metrics, "credentials_wait_timeouts_total",
						    "Requests that waited fetch_timeout for a token in vain.", NULL);
		if (ref && cr->m_failures && to) {
			cr->m_refresh_access = metrics_series(ref, "access");
			cr->m_refresh_id = metrics_series(ref, "id");
			cr->m_wait_timeouts = metrics_series(to);
			metrics_collector_add(metrics, cred_collect, cr);
		} else {
			cr->metrics = NULL;
		}
	}
	log_info(&cred_log, "credentials: %s from %s%s%s%s", credentials_source_kind_name(cr->src.kind), cr->src.origin,
		 cr->src.email ? " (" : "", cr->src.email ? cr->src.email : "", cr->src.email ? ")" : "");
	return cr;
fail_cr:
	credentials_destroy(cr);
fail:
	log_error(&cred_log, "credentials: %s", err);
	return NULL;
}

void credentials_start(struct credentials *cr)
{
	if (!cr || cr->src.kind == CRED_SOURCE_NONE || !cr->prefetch)
		return;
	cr->default_cache->kick = true;
	cred_cache_schedule(cr->default_cache);
}

void credentials_destroy(struct credentials *cr)
{
	if (!cr)
		return;
	if (cr->metrics)
		metrics_collector_remove(cr->metrics, cred_collect, cr);
	while (cr->caches) {
		struct cred_cache *c = cr->caches;
		cr->caches = c->next;
		credentials_fetch_cancel(c->fetch);
		while (c->waiters.head)
			cred_wait_free(c->waiters.head);
		if (c->timer)
			event_free(c->timer);
		cred_secret_free(c->token);
		free(c->last_error);
		free(c->key);
		free(c);
	}
	while (cr->pending.head)
		cred_wait_free(cr->pending.head);
	free(cr->memo_scopes);
	credentials_source_deinit(&cr->src);
	free(cr->default_scopes);
	free(cr);
}
