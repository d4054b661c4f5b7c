/* The read cache's view of a pool's schema (pg_catalog.h): one libpq connection per pool, driven
 * by the event loop, answering one question at a time from a FIFO, and a memo of the answers. */
#include "pg_catalog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <libpq-fe.h>

#include "../cache/cache.h"
#include "pg_internal.h"

#define PG_CATALOG_TIMEOUT_MS 5000
#define PG_CATALOG_BACKOFF_MAX_MS 30000

struct pg_catalog_req {
	struct pg_catalog_req *next;
	struct pg_catalog *cat;
	char *search_path;
	char **names;
	size_t n;
	pg_catalog_fn cb;
	void *arg;
	uint64_t gen; /* cat->gen when asked: a forget since makes the answer worthless */
	bool cancelled;
	bool retried; /* asked again on a new connection after the old one broke */
};

enum pg_catalog_state { PG_CAT_DOWN, PG_CAT_CONNECTING, PG_CAT_READY, PG_CAT_BUSY };

struct pg_catalog {
	struct pg_pool *pool;
	struct log_src log;
	PGconn *conn;
	enum pg_catalog_state state;
	int fd;
	struct event *rev, *wev, *timer;
	struct pg_catalog_req *head, *tail;
	int step;          /* BUSY: 0 setting search_path, 1 the question */
	char *cur_path;    /* search_path set on the connection (NULL: default) */
	bool result_seen;  /* the question's rows were read */
	bool result_ok;
	int64_t down_until; /* fail fast while backing off */
	int64_t backoff_ms;
	uint64_t gen, epoch;
	bool have_epoch;
	struct pg_catalog_deps **b;
	size_t nb, n;
	uint64_t queries, failures;
};

static int64_t pg_catalog_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t pg_catalog_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static char *pg_catalog_key(const char *search_path, const char *name)
{
	char *k = NULL;
	if (asprintf(&k, "%s\x01%s", search_path ? search_path : "", name) < 0)
		return NULL;
	return k;
}

static void pg_catalog_strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void pg_catalog_deps_free(struct pg_catalog_deps *d)
{
	free(d->key);
	pg_catalog_strv_free(d->reads, d->nreads);
	pg_catalog_strv_free(d->writes, d->nwrites);
	free(d->key_column);
	free(d);
}

static void pg_catalog_free_all(struct pg_catalog *cat)
{
	for (size_t i = 0; i < cat->nb; i++) {
		while (cat->b[i]) {
			struct pg_catalog_deps *d = cat->b[i];
			cat->b[i] = d->next;
			pg_catalog_deps_free(d);
		}
	}
	cat->n = 0;
}

void pg_catalog_forget(struct pg_catalog *cat)
{
	/* entries stay (replaced when learnt again) for pg_catalog_peek */
	cat->gen++;
}

bool pg_catalog_epoch(struct pg_catalog *cat, uint64_t epoch)
{
	if (epoch == 0 || (cat->have_epoch && cat->epoch == epoch))
		return false;
	/* the first epoch seen also counts as a change: what was learnt before it may predate it */
	bool had = cat->n > 0 || cat->head;
	cat->epoch = epoch;
	cat->have_epoch = true;
	pg_catalog_forget(cat);
	if (had)
		log_debug(&cat->log, "cache epoch moved: forgetting what was learnt of the schema");
	return true;
}

static struct pg_catalog_deps *pg_catalog_find(struct pg_catalog *cat, const char *key, uint64_t h)
{
	if (!cat->nb)
		return NULL;
	for (struct pg_catalog_deps *d = cat->b[h % cat->nb]; d; d = d->next)
		if (d->hash == h && strcmp(d->key, key) == 0)
			return d;
	return NULL;
}

static const struct pg_catalog_deps *pg_catalog_lookup(struct pg_catalog *cat, const char *search_path,
							const char *name, bool current, int64_t ttl_factor)
{
	char key[512];
	const char *sp = search_path ? search_path : "";
	size_t sl = strlen(sp), nl = strlen(name);
	struct pg_catalog_deps *d;
	if (sl + nl + 2 <= sizeof(key)) {
		memcpy(key, sp, sl);
		key[sl] = '\x01';
		memcpy(key + sl + 1, name, nl + 1);
	}
	if (sl + nl + 2 > sizeof(key)) {
		char *k = pg_catalog_key(search_path, name);
		if (!k)
			return NULL;
		d = pg_catalog_find(cat, k, pg_catalog_hash(k));
		free(k);
	} else {
		d = pg_catalog_find(cat, key, pg_catalog_hash(key));
	}
	if (!d || (current && d->gen != cat->gen))
		return NULL;
	struct cache *c = cache_instance();
	int64_t ttl = c ? cache_schema_ttl(c) : 30000;
	if (pg_catalog_now() - d->learnt_ms > ttl * ttl_factor)
		return NULL; /* relearnt by the caller; the stale entry is replaced then */
	return d;
}

const struct pg_catalog_deps *pg_catalog_get(struct pg_catalog *cat, const char *search_path, const char *name)
{
	return pg_catalog_lookup(cat, search_path, name, true, 1);
}

const struct pg_catalog_deps *pg_catalog_peek(struct pg_catalog *cat, const char *search_path, const char *name)
{
	return pg_catalog_lookup(cat, search_path, name, false, 2);
}

/* Adds (or replaces) the entry for key. */
static struct pg_catalog_deps *pg_catalog_put(struct pg_catalog *cat, char *key)
{
	uint64_t h = pg_catalog_hash(key);
	if (cat->n + 1 > cat->nb * 2) {
		size_t nb = cat->nb ? cat->nb * 2 : 64;
		struct pg_catalog_deps **b = calloc(nb, sizeof(*b));
		if (!b)
			return NULL;
		for (size_t i = 0; i < cat->nb; i++) {
			while (cat->b[i]) {
				struct pg_catalog_deps *d = cat->b[i];
				cat->b[i] = d->next;
				d->next = b[d->hash % nb];
				b[d->hash % nb] = d;
			}
		}
		free(cat->b);
		cat->b = b;
		cat->nb = nb;
	}
	for (struct pg_catalog_deps **pp = &cat->b[h % cat->nb]; *pp; pp = &(*pp)->next) {
		if ((*pp)->hash == h && strcmp((*pp)->key, key) == 0) {
			struct pg_catalog_deps *old = *pp;
			*pp = old->next;
			pg_catalog_deps_free(old);
			cat->n--;
			break;
		}
	}
	struct pg_catalog_deps *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->key = key;
	d->hash = h;
	d->gen = cat->gen;
	d->learnt_ms = pg_catalog_now();
	d->next = cat->b[h % cat->nb];
	cat->b[h % cat->nb] = d;
	cat->n++;
	return d;
}

static int pg_catalog_strv_add(char ***v, size_t *n, const char *s)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp((*v)[i], s) == 0)
			return 0;
	char **nv = realloc(*v, (*n + 1) * sizeof(char *));
	if (!nv)
		return -1;
	*v = nv;
	if (!(nv[*n] = strdup(s)))
		return -1;
	(*n)++;
	return 0;
}

/* --- the question --- */

/* For each name: 'r' rows for what a read depends on (views expanded through their rewrite
 * rules), with the relation's kind and, for a view, its definition (PostgreSQL records no
 * dependency on built-in functions, so what a view calls is read from its text); 'w' rows for
 * what a write reaches (foreign keys with actions, partition/inheritance parents and children)
 * with '*' instead of 'w' for a relation whose writes tether cannot follow (a view, rules, user
 * triggers); a 'k' row naming the key column of a plain table whose primary key is one integer
 * column (finer invalidation by key value); and a '?' row when the name does not resolve. */
static const char pg_catalog_sql[] =
	"SELECT n, 'r', format('%I.%I', ns.nspname, c.relname), c.relkind::text,"
	"  CASE WHEN c.relkind = 'v' THEN pg_get_viewdef(c.oid) END FROM unnest($1::text[]) n,"
	" LATERAL (WITH RECURSIVE d(oid) AS (SELECT to_regclass(n)::oid UNION"
	"  SELECT dep.refobjid FROM d JOIN pg_class v ON v.oid = d.oid AND v.relkind = 'v'"
	"  JOIN pg_rewrite rw ON rw.ev_class = d.oid"
	"  JOIN pg_depend dep ON dep.classid = 'pg_rewrite'::regclass AND dep.objid = rw.oid"
	"   AND dep.refclassid = 'pg_class'::regclass AND dep.refobjid <> d.oid)"
	"  SELECT oid FROM d) r JOIN pg_class c ON c.oid = r.oid JOIN pg_namespace ns ON ns.oid = c.relnamespace"
	" UNION ALL"
	" SELECT n, CASE WHEN c.relkind = 'v' OR c.relhasrules OR EXISTS (SELECT 1 FROM pg_trigger t"
	"  WHERE t.tgrelid = c.oid AND NOT t.tgisinternal) THEN '*' ELSE 'w' END,"
	"  format('%I.%I', ns.nspname, c.relname), c.relkind::text, NULL FROM unnest($1::text[]) n,"
	" LATERAL (WITH RECURSIVE w(oid) AS (SELECT to_regclass(n)::oid UNION"
	"  SELECT x.o FROM w, LATERAL ("
	"   SELECT conrelid FROM pg_constraint WHERE contype = 'f' AND confrelid = w.oid"
	"    AND (confdeltype NOT IN ('a', 'r') OR confupdtype NOT IN ('a', 'r'))"
	"   UNION ALL SELECT inhparent FROM pg_inherits WHERE inhrelid = w.oid"
	"   UNION ALL SELECT inhrelid FROM pg_inherits WHERE inhparent = w.oid) x(o))"
	"  SELECT oid FROM w) r JOIN pg_class c ON c.oid = r.oid JOIN pg_namespace ns ON ns.oid = c.relnamespace"
	" UNION ALL"
	" SELECT n, 'k', a.attname::text, c.relkind::text, NULL FROM unnest($1::text[]) n"
	"  JOIN pg_class c ON c.oid = to_regclass(n) AND c.relkind = 'r'"
	"  JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary AND i.indnkeyatts = 1"
	"  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0]"
	"  WHERE a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype) AND quote_ident(a.attname) = a.attname"
	" UNION ALL"
	" SELECT n, '?', '', '', NULL FROM unnest($1::text[]) n WHERE to_regclass(n) IS NULL";

/* A text[] literal: {"a","b"} with " and \ escaped. */
static char *pg_catalog_array(char *const *names, size_t n)
{
	size_t len = 3;
	for (size_t i = 0; i < n; i++)
		len += 3 + 2 * strlen(names[i]);
	char *s = malloc(len), *p = s;
	if (!s)
		return NULL;
	*p++ = '{';
	for (size_t i = 0; i < n; i++) {
		if (i)
			*p++ = ',';
		*p++ = '"';
		for (const char *q = names[i]; *q; q++) {
			if (*q == '"' || *q == '\\')
				*p++ = '\\';
			*p++ = *q;
		}
		*p++ = '"';
	}
	*p++ = '}';
	*p = 0;
	return s;
}

static void pg_catalog_close(struct pg_catalog *cat, const char *why);
static void pg_catalog_connect(struct pg_catalog *cat);
static void pg_catalog_next(struct pg_catalog *cat);
static void pg_catalog_on_io(evutil_socket_t fd, short what, void *arg);

static void pg_catalog_req_free(struct pg_catalog_req *r)
{
	free(r->search_path);
	pg_catalog_strv_free(r->names, r->n);
	free(r);
}

/* The head question is answered (ok) or given up on: tell its asker, go on with the next. */
static void pg_catalog_done(struct pg_catalog *cat, bool ok)
{
	struct pg_catalog_req *r = cat->head;
	if (!r)
		return;
	cat->head = r->next;
	if (!cat->head)
		cat->tail = NULL;
	if (cat->timer)
		evtimer_del(cat->timer);
	if (cat->state == PG_CAT_BUSY)
		cat->state = PG_CAT_READY;
	if (!r->cancelled)
		r->cb(r->arg, ok && r->gen == cat->gen);
	pg_catalog_req_free(r);
}

static void pg_catalog_fail_all(struct pg_catalog *cat)
{
	while (cat->head) {
		cat->failures++;
		pg_catalog_done(cat, false);
	}
}

/* A view's definition: what it calls decides whether reads of it may be cached (volatile
 * functions: no) and whether running it may write (functions or operators tether does not
 * know: then a statement reading it invalidates everything). */
static void pg_catalog_view(struct pg_catalog_deps *d, const char *def)
{
	struct cache *c = cache_instance();
	struct cache_sql_opts opts = c ? cache_sql_options(c) : (struct cache_sql_opts){ 0 };
	struct cache_sql_info info;
	if (cache_sql_analyze(def, strlen(def), &opts, &info) != 0) {
		d->nocache = d->calls = true;
		return;
	}
	if (!info.cacheable)
		d->nocache = true;
	if (info.invalidate_all)
		d->calls = true;
	cache_sql_info_deinit(&info);
}

/* Rows of the question's answer into the memo. */
static bool pg_catalog_take(struct pg_catalog *cat, PGresult *res)
{
	struct pg_catalog_req *r = cat->head;
	if (r->gen != cat->gen)
		return true; /* a forget happened meanwhile: the answer may describe the old schema */
	if (cat->n + r->n >= 50000)
		pg_catalog_free_all(cat); /* a schema of that many names: start again */
	struct pg_catalog_deps **ds = calloc(r->n ? r->n : 1, sizeof(*ds));
	if (!ds)
		return false;
	bool ok = true;
	for (size_t i = 0; ok && i < r->n; i++) {
		char *key = pg_catalog_key(r->search_path, r->names[i]);
		ds[i] = key ? pg_catalog_put(cat, key) : NULL;
		if (!ds[i]) {
			free(key);
			ok = false;
		} else {
			ds[i]->found = true;
		}
	}
	int rows = PQntuples(res);
	for (int row = 0; ok && row < rows; row++) {
		const char *n = PQgetvalue(res, row, 0), *kind = PQgetvalue(res, row, 1), *rel = PQgetvalue(res, row, 2);
		struct pg_catalog_deps *d = NULL;
		for (size_t i = 0; i < r->n && !d; i++)
			if (strcmp(r->names[i], n) == 0)
				d = ds[i];
		if (!d)
			continue;
		if (kind[0] == '?') {
			d->found = false;
		} else if (kind[0] == 'k') {
			free(d->key_column);
			ok = (d->key_column = strdup(rel)) != NULL;
		} else if (kind[0] == 'r') {
			const char *relkind = PQgetvalue(res, row, 3);
			if (relkind[0] == 'S')
				d->nocache = true; /* nextval/setval change it without a write tether sees */
			if (!PQgetisnull(res, row, 4))
				pg_catalog_view(d, PQgetvalue(res, row, 4));
			ok = pg_catalog_strv_add(&d->reads, &d->nreads, rel) == 0;
		} else {
			if (kind[0] == '*')
				d->write_all = true;
			ok = pg_catalog_strv_add(&d->writes, &d->nwrites, rel) == 0;
		}
	}
	for (size_t i = 0; i < r->n; i++)
		if (ds[i] && !ds[i]->found)
			ds[i]->write_all = true; /* a write to a name tether cannot resolve: anything */
	free(ds);
	if (!ok)
		pg_catalog_forget(cat); /* a half-stored answer is not to be used */
	return ok;
}

static void pg_catalog_arm(struct pg_catalog *cat, bool want_write)
{
	if (want_write)
		event_add(cat->wev, NULL);
	else
		event_del(cat->wev);
}

static void pg_catalog_flush(struct pg_catalog *cat)
{
	int f = PQflush(cat->conn);
	if (f < 0)
		pg_catalog_close(cat, PQerrorMessage(cat->conn));
	else
		pg_catalog_arm(cat, f == 1);
}

/* Sends the head question (or first the search_path it needs). */
static void pg_catalog_send(struct pg_catalog *cat)
{
	struct pg_catalog_req *r = cat->head;
	const char *want = r->search_path;
	bool same = (!want && !cat->cur_path) || (want && cat->cur_path && strcmp(want, cat->cur_path) == 0);
	int ok;
	cat->state = PG_CAT_BUSY;
	cat->result_seen = cat->result_ok = false;
	if (!same) {
		cat->step = 0;
		if (want) {
			const char *v[1] = { want };
			ok = PQsendQueryParams(cat->conn, "SELECT set_config('search_path', $1, false)", 1, NULL, v, NULL,
					       NULL, 0);
		} else {
			ok = PQsendQueryParams(cat->conn, "RESET search_path", 0, NULL, NULL, NULL, NULL, 0);
		}
	} else {
		cat->step = 1;
		char *arr = pg_catalog_array(r->names, r->n);
		const char *v[1] = { arr };
		ok = arr && PQsendQueryParams(cat->conn, pg_catalog_sql, 1, NULL, v, NULL, NULL, 0);
		free(arr);
		cat->queries++;
	}
	if (!ok) {
		pg_catalog_close(cat, PQerrorMessage(cat->conn));
		return;
	}
	struct timeval tv = { PG_CATALOG_TIMEOUT_MS / 1000, 0 };
	evtimer_add(cat->timer, &tv);
	pg_catalog_flush(cat);
}

static void pg_catalog_next(struct pg_catalog *cat)
{
	if (cat->state == PG_CAT_READY && cat->head)
		pg_catalog_send(cat);
}

/* One command's results finished (PQgetResult returned NULL). */
static void pg_catalog_command_done(struct pg_catalog *cat)
{
	struct pg_catalog_req *r = cat->head;
	if (!r)
		return;
	if (cat->step == 0) {
		if (!cat->result_ok) {
			/* a search_path PostgreSQL refuses: nothing to learn under it */
			cat->failures++;
			pg_catalog_done(cat, false);
			pg_catalog_next(cat);
			return;
		}
		free(cat->cur_path);
		cat->cur_path = r->search_path ? strdup(r->search_path) : NULL;
		if (r->search_path && !cat->cur_path) {
			pg_catalog_close(cat, "out of memory");
			return;
		}
		cat->state = PG_CAT_READY;
		pg_catalog_send(cat);
		return;
	}
	if (!cat->result_ok)
		cat->failures++;
	pg_catalog_done(cat, cat->result_ok);
	pg_catalog_next(cat);
}

static void pg_catalog_read(struct pg_catalog *cat)
{
	if (!PQconsumeInput(cat->conn)) {
		pg_catalog_close(cat, PQerrorMessage(cat->conn));
		return;
	}
	while (cat->conn && !PQisBusy(cat->conn)) {
		PGresult *res = PQgetResult(cat->conn);
		if (!res) {
			if (cat->state != PG_CAT_BUSY)
				break;
			pg_catalog_command_done(cat);
			if (cat->state != PG_CAT_BUSY)
				break;
			continue;
		}
		ExecStatusType st = PQresultStatus(res);
		if (cat->state == PG_CAT_BUSY && !cat->result_seen) {
			cat->result_seen = true;
			if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
				cat->result_ok = cat->step == 0 || pg_catalog_take(cat, res);
			else
				log_info(&cat->log, "catalog query failed: %s", PQresultErrorMessage(res));
		}
		PQclear(res);
	}
	if (cat->conn && cat->state != PG_CAT_CONNECTING)
		pg_catalog_flush(cat);
}

static int pg_catalog_watch(struct pg_catalog *cat, PostgresPollingStatusType want)
{
	int fd = PQsocket(cat->conn);
	if (fd != cat->fd) {
		if (cat->rev)
			event_free(cat->rev);
		if (cat->wev)
			event_free(cat->wev);
		struct event_base *base = core_base(cat->pool->pg->core);
		cat->rev = event_new(base, fd, EV_READ | EV_PERSIST, pg_catalog_on_io, cat);
		cat->wev = event_new(base, fd, EV_WRITE, pg_catalog_on_io, cat);
		cat->fd = fd;
		if (!cat->rev || !cat->wev) {
			pg_catalog_close(cat, "out of memory");
			return -1;
		}
		event_add(cat->rev, NULL);
	}
	pg_catalog_arm(cat, want == PGRES_POLLING_WRITING);
	return 0;
}

static void pg_catalog_poll(struct pg_catalog *cat)
{
	PostgresPollingStatusType st = PQconnectPoll(cat->conn);
	if (st == PGRES_POLLING_FAILED) {
		pg_catalog_close(cat, PQerrorMessage(cat->conn));
		return;
	}
	if (st == PGRES_POLLING_OK) {
		PQsetnonblocking(cat->conn, 1);
		evtimer_del(cat->timer);
		cat->state = PG_CAT_READY;
		cat->backoff_ms = 0;
		free(cat->cur_path);
		cat->cur_path = NULL;
		if (pg_catalog_watch(cat, PGRES_POLLING_READING) != 0)
			return;
		log_debug(&cat->log, "catalog connection ready");
		pg_catalog_next(cat);
		return;
	}
	(void)pg_catalog_watch(cat, st);
}

static void pg_catalog_on_io(evutil_socket_t fd, short what, void *arg)
{
	struct pg_catalog *cat = arg;
	if (cat->state == PG_CAT_CONNECTING)
		pg_catalog_poll(cat);
	else if (what & EV_READ)
		pg_catalog_read(cat);
	else
		pg_catalog_flush(cat);
}

static void pg_catalog_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct pg_catalog *cat = arg;
	pg_catalog_close(cat, cat->state == PG_CAT_CONNECTING ? "connect timed out" : "catalog query timed out");
}

static void pg_catalog_close(struct pg_catalog *cat, const char *why)
{
	if (cat->conn) {
		char msg[256];
		snprintf(msg, sizeof(msg), "%s", why && *why ? why : "connection lost");
		msg[strcspn(msg, "\n")] = 0;
		log_info(&cat->log, "catalog connection: %s", msg);
	}
	if (cat->rev)
		event_free(cat->rev);
	if (cat->wev)
		event_free(cat->wev);
	cat->rev = cat->wev = NULL;
	cat->fd = -1;
	if (cat->conn)
		PQfinish(cat->conn);
	cat->conn = NULL;
	bool was_up = cat->state == PG_CAT_READY || cat->state == PG_CAT_BUSY;
	cat->state = PG_CAT_DOWN;
	free(cat->cur_path);
	cat->cur_path = NULL;
	if (was_up && cat->head && !cat->head->retried) {
		/* a connection that worked broke (killed while idle, server restart): ask again at
		 * once on a new one, before giving up on anybody */
		for (struct pg_catalog_req *r = cat->head; r; r = r->next)
			r->retried = true;
		cat->backoff_ms = 0;
		pg_catalog_connect(cat);
		return;
	}
	cat->backoff_ms = was_up ? 0 : cat->backoff_ms ? cat->backoff_ms * 2 : 500;
	if (cat->backoff_ms > PG_CATALOG_BACKOFF_MAX_MS)
		cat->backoff_ms = PG_CATALOG_BACKOFF_MAX_MS;
	cat->down_until = pg_catalog_now() + cat->backoff_ms;
	pg_catalog_fail_all(cat);
}

/* libpq's notices (a FATAL from a server that is shutting down ...) go to the log, not stderr. */
static void pg_catalog_notice(void *arg, const char *message)
{
	struct pg_catalog *cat = arg;
	char msg[256];
	snprintf(msg, sizeof(msg), "%s", message);
	msg[strcspn(msg, "\n")] = 0;
	log_debug(&cat->log, "catalog connection: %s", msg);
}

static void pg_catalog_connect(struct pg_catalog *cat)
{
	const struct pg_conf_db *db = cat->pool->db;
	static const char *const modes[] = { "disable", "prefer", "require", "verify-ca", "verify-full" };
	char port[24], timeout[24];
	snprintf(port, sizeof(port), "%lld", (long long)db->port);
	snprintf(timeout, sizeof(timeout), "%lld", (long long)(db->connect_timeout + 999) / 1000);
	bool sock = db->host[0] == '/';
	const char *addr = strcmp(db->host, "localhost") == 0 ? "127.0.0.1" : db->host;
	const char *keys[12], *vals[12];
	int n = 0;
	keys[n] = sock ? "host" : "hostaddr", vals[n++] = addr;
	keys[n] = "port", vals[n++] = port;
	keys[n] = "dbname", vals[n++] = db->dbname ? db->dbname : db->name;
	keys[n] = "user", vals[n++] = db->user;
	if (db->password)
		keys[n] = "password", vals[n++] = db->password;
	keys[n] = "sslmode", vals[n++] = sock ? "disable" : modes[db->sslmode];
	if (db->sslrootcert)
		keys[n] = "sslrootcert", vals[n++] = db->sslrootcert;
	if (!sock && db->sslmode == PG_SSL_VERIFY_FULL)
		keys[n] = "host", vals[n++] = db->host; /* the name the certificate is checked against */
	keys[n] = "application_name", vals[n++] = "tether-catalog";
	keys[n] = "connect_timeout", vals[n++] = timeout;
	keys[n] = NULL, vals[n] = NULL;
	cat->conn = PQconnectStartParams(keys, vals, 0);
	if (!cat->conn || PQstatus(cat->conn) == CONNECTION_BAD) {
		pg_catalog_close(cat, cat->conn ? PQerrorMessage(cat->conn) : "out of memory");
		return;
	}
	PQsetNoticeProcessor(cat->conn, pg_catalog_notice, cat);
	cat->state = PG_CAT_CONNECTING;
	struct timeval tv = { db->connect_timeout / 1000, (db->connect_timeout % 1000) * 1000 };
	evtimer_add(cat->timer, &tv);
	(void)pg_catalog_watch(cat, PGRES_POLLING_WRITING);
}

struct pg_catalog_req *pg_catalog_learn(struct pg_catalog *cat, const char *search_path, char *const *names,
					size_t n, pg_catalog_fn cb, void *arg)
{
	if (cat->state == PG_CAT_DOWN && pg_catalog_now() < cat->down_until)
		return NULL;
	struct pg_catalog_req *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->cat = cat;
	r->cb = cb;
	r->arg = arg;
	r->gen = cat->gen;
	r->names = calloc(n ? n : 1, sizeof(char *));
	r->search_path = search_path ? strdup(search_path) : NULL;
	bool ok = r->names && (!search_path || r->search_path);
	for (size_t i = 0; ok && i < n; i++) {
		bool dup = false; /* each name once: the answer's entries are keyed by it */
		for (size_t k = 0; k < r->n && !dup; k++)
			dup = strcmp(r->names[k], names[i]) == 0;
		if (!dup)
			ok = (r->names[r->n++] = strdup(names[i])) != NULL;
	}
	if (!ok) {
		pg_catalog_req_free(r);
		return NULL;
	}
	if (cat->tail)
		cat->tail->next = r;
	else
		cat->head = r;
	cat->tail = r;
	if (cat->state == PG_CAT_DOWN)
		pg_catalog_connect(cat);
	else
		pg_catalog_next(cat);
	return r;
}

void pg_catalog_cancel(struct pg_catalog_req *req)
{
	req->cancelled = true;
}

struct pg_catalog *pg_catalog_create(struct pg_pool *pool)
{
	struct pg_catalog *cat = calloc(1, sizeof(*cat));
	if (!cat)
		return NULL;
	cat->pool = pool;
	cat->fd = -1;
	cat->log = (struct log_src){ "pg", 0 };
	cat->timer = evtimer_new(core_base(pool->pg->core), pg_catalog_on_timer, cat);
	if (!cat->timer) {
		free(cat);
		return NULL;
	}
	return cat;
}

void pg_catalog_destroy(struct pg_catalog *cat)
{
	if (!cat)
		return;
	while (cat->head) {
		struct pg_catalog_req *r = cat->head;
		cat->head = r->next;
		pg_catalog_req_free(r);
	}
	if (cat->rev)
		event_free(cat->rev);
	if (cat->wev)
		event_free(cat->wev);
	if (cat->conn)
		PQfinish(cat->conn);
	event_free(cat->timer);
	pg_catalog_free_all(cat);
	free(cat->b);
	free(cat->cur_path);
	free(cat);
}

void pg_catalog_get_stats(const struct pg_catalog *cat, struct pg_catalog_stats *out)
{
	*out = (struct pg_catalog_stats){ .queries = cat->queries,
					  .failures = cat->failures,
					  .entries = cat->n,
					  .connected = cat->state == PG_CAT_READY || cat->state == PG_CAT_BUSY };
}
