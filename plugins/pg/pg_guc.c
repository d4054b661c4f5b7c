/* Client settings across servers: what a client asked for at startup (and what the server
 * reported since, when the client changed it), compared with the server it is given and
 * re-applied with tether's own query before the client's first message reaches that server. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "pg_internal.h"
#include "startup.h"

/* Settings PostgreSQL reports with ParameterStatus and a client may set: the server's report
 * tells tether what each server has, so these are compared with it. */
static const char *const pg_guc_reported_names[] = {
	"application_name", "client_encoding", "DateStyle", "IntervalStyle", "TimeZone",
	"standard_conforming_strings", "default_transaction_read_only", NULL,
};

_Static_assert(sizeof(pg_guc_reported_names) / sizeof(pg_guc_reported_names[0]) == PG_GUC_NREPORTED + 1,
	       "PG_GUC_NREPORTED");
#define PG_GUC_APPLICATION_NAME 0

/* The index of a reported setting spelled as pg_guc_reported_names has it (a client's gucs keep
 * that spelling), else -1: one strcmp, on the hot path of every server a client is given. */
static int pg_guc_reported_index(const char *name)
{
	int i;
	switch (name[0]) {
	case 'a': i = 0; break;
	case 'c': i = 1; break;
	case 'D': i = 2; break;
	case 'I': i = 3; break;
	case 'T': i = 4; break;
	case 's': i = 5; break;
	case 'd': i = 6; break;
	default: return -1;
	}
	return strcmp(name, pg_guc_reported_names[i]) == 0 ? i : -1;
}

/* The values of the reported settings in `p`, by index. */
static void pg_guc_reported_values(const struct pg_params *p, const char *v[PG_GUC_NREPORTED])
{
	for (size_t i = 0; i < PG_GUC_NREPORTED; i++)
		v[i] = pg_params_get(p, pg_guc_reported_names[i]);
}

static const char *pg_guc_reported_name(const char *name)
{
	for (size_t i = 0; pg_guc_reported_names[i]; i++)
		if (strcasecmp(name, pg_guc_reported_names[i]) == 0)
			return pg_guc_reported_names[i];
	return NULL;
}

/* GUC names are identifiers, possibly qualified (an extension's "plan.x"); nothing else is let
 * near a query. */
static bool pg_guc_name_ok(const char *n)
{
	if (!*n || strlen(n) > 63 || !(isalpha((unsigned char)*n) || *n == '_'))
		return false;
	for (; *n; n++)
		if (!isalnum((unsigned char)*n) && *n != '_' && *n != '.')
			return false;
	return true;
}

static int pg_guc_add(struct pg_client *c, const char *name, const char *value, char *err, size_t errlen)
{
	static const char *const refused[] = { "replication", "session_authorization", "role", "is_superuser", NULL };
	if (!pg_guc_name_ok(name)) {
		snprintf(err, errlen, "invalid startup parameter name");
		return -1;
	}
	for (size_t i = 0; refused[i]; i++) {
		if (strcasecmp(name, refused[i]) == 0) {
			snprintf(err, errlen, "startup parameter \"%s\" is not supported by tether", name);
			return -1;
		}
	}
	const char *canon = pg_guc_reported_name(name);
	char lower[64];
	if (!canon) {
		size_t i = 0;
		for (; name[i]; i++)
			lower[i] = (char)tolower((unsigned char)name[i]);
		lower[i] = 0;
		canon = lower;
	}
	if (pg_params_set(&c->gucs, canon, value) != 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

/* "options": only -c name=value and --name=value, as libpq's PGOPTIONS carries them. */
static int pg_guc_options(struct pg_client *c, const char *opts, char *err, size_t errlen)
{
	char *copy = strdup(opts);
	if (!copy) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	int rc = 0;
	char *save = NULL;
	for (char *tok = strtok_r(copy, " \t", &save); tok && rc == 0; tok = strtok_r(NULL, " \t", &save)) {
		char *setting;
		if (strcmp(tok, "-c") == 0)
			setting = strtok_r(NULL, " \t", &save);
		else if (strncmp(tok, "-c", 2) == 0)
			setting = tok + 2;
		else if (strncmp(tok, "--", 2) == 0)
			setting = tok + 2;
		else
			setting = NULL;
		char *eq = setting ? strchr(setting, '=') : NULL;
		if (!eq) {
			snprintf(err, errlen, "unsupported startup option in \"options\" (tether accepts -c name=value)");
			rc = -1;
			break;
		}
		*eq = 0;
		for (char *p = setting; *p; p++)
			if (*p == '-')
				*p = '_';
		rc = pg_guc_add(c, setting, eq + 1, err, errlen);
	}
	free(copy);
	return rc;
}

int pg_guc_startup(struct pg_client *c, const struct startup *st, char *err, size_t errlen)
{
	/* (the name is the canonical one and passes pg_guc_add's checks: set directly) */
	if (st->application_name && pg_params_set(&c->gucs, "application_name", st->application_name) != 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < st->n_params; i++)
		if (pg_guc_add(c, st->params[i].key, st->params[i].value, err, errlen) != 0)
			return -1;
	if (st->options && pg_guc_options(c, st->options, err, errlen) != 0)
		return -1;
	return 0;
}

const char *pg_guc_expected(const struct pg_client *c, const char *name)
{
	const char *v = pg_params_get(&c->gucs, name);
	if (v)
		return v;
	/* servers log in as "tether"; a client that named itself nothing sees nothing */
	if (strcmp(name, "application_name") == 0)
		return "";
	return pg_params_get(&c->pool->params, name);
}

/* E'...' reads the same whatever standard_conforming_strings says. */
static int pg_guc_literal(struct evbuffer *b, const char *v)
{
	int rc = evbuffer_add(b, "E'", 2);
	for (; *v && rc == 0; v++) {
		if (*v == '\'' || *v == '\\')
			rc = evbuffer_add(b, v, 1);
		if (rc == 0)
			rc = evbuffer_add(b, v, 1);
	}
	return rc == 0 ? evbuffer_add(b, "'", 1) : rc;
}

/* The query is built only when something differs: the common case (a server that already has
 * the client's settings) allocates nothing. */
static struct evbuffer *pg_guc_buf(struct evbuffer **b)
{
	if (!*b)
		*b = evbuffer_new();
	return *b;
}

static int pg_guc_set(struct evbuffer **sql, const char *name, const char *value)
{
	struct evbuffer *b = pg_guc_buf(sql);
	if (!b)
		return -1;
	bool first = evbuffer_get_length(b) == 0;
	int rc = evbuffer_add_printf(b, "%spg_catalog.set_config('%s', ", first ? "SELECT " : ", ", name) < 0;
	if (rc == 0)
		rc = pg_guc_literal(b, value);
	return rc == 0 && evbuffer_add(b, ", false)", 8) == 0 ? 0 : -1;
}

/* Whether the client asks for the very settings (same names and values, in the same order) of
 * the last client the server was found to match already: then it matches this one too, unless
 * the server's settings changed since (what the server reported, or what tether set or reset
 * on it). */
static bool pg_guc_same_as_last(const struct pg_client *c, const struct pg_server *s)
{
	if (!s->guc_match_ok || !s->reported_ok || s->guc_match.n != c->gucs.n)
		return false;
	for (uint32_t i = 0; i < c->gucs.n; i++)
		if (strcmp(c->gucs.v[i].name, s->guc_match.v[i].name) != 0 ||
		    strcmp(c->gucs.v[i].value, s->guc_match.v[i].value) != 0)
			return false;
	return true;
}

/* The server has the client's settings: remembered for pg_guc_same_as_last. */
static void pg_guc_matched(const struct pg_client *c, struct pg_server *s)
{
	pg_params_clear(&s->guc_match);
	s->guc_match_ok = true;
	for (uint32_t i = 0; s->guc_match_ok && i < c->gucs.n; i++)
		s->guc_match_ok = pg_params_set(&s->guc_match, c->gucs.v[i].name, c->gucs.v[i].value) == 0;
}

int pg_guc_apply(struct pg_client *c, struct pg_server *s)
{
	if (pg_guc_same_as_last(c, s))
		return 0; /* (most clients of a pool ask for the same: the comparison below is skipped) */
	struct evbuffer *sql = NULL;
	int rc = 0;
	/* reported settings: what the client was told (its own or the pool's, as pg_guc_expected
	 * says) against the server's; both sides' values looked up once, not per server given */
	struct pg_pool *pool = c->pool;
	if (!pool->reported_ok && pool->have_params) {
		pg_guc_reported_values(&pool->params, pool->reported);
		pool->reported_ok = true;
	}
	if (!s->reported_ok) {
		pg_guc_reported_values(&s->params, s->reported);
		s->reported_ok = true;
		/* (the pool's values never change once known: compared once per change of the
		 * server's, not at every client it is given) */
		s->reported_same = 0;
		for (size_t i = 0; pool->reported_ok && i < PG_GUC_NREPORTED; i++) {
			const char *a = s->reported[i], *b = pool->reported[i];
			if ((!a && !b) || (a && b && strcmp(a, b) == 0))
				s->reported_same |= (uint8_t)(1u << i);
		}
	}
	const char *want[PG_GUC_NREPORTED];
	if (pool->reported_ok)
		memcpy(want, pool->reported, sizeof(want));
	else
		pg_guc_reported_values(&pool->params, want);
	/* servers log in as "tether"; a client that named itself nothing sees nothing */
	want[PG_GUC_APPLICATION_NAME] = "";
	uint64_t others = 0; /* bit i: c->gucs.v[i] is not a reported setting (the first 64) */
	for (uint32_t i = 0; i < c->gucs.n; i++) {
		int k = pg_guc_reported_index(c->gucs.v[i].name);
		if (k >= 0)
			want[k] = c->gucs.v[i].value;
		else if (i < 64)
			others |= (uint64_t)1 << i;
	}
	for (size_t i = 0; rc == 0 && i < PG_GUC_NREPORTED; i++) {
		const char *have = s->reported[i];
		if (pool->reported_ok && want[i] == pool->reported[i] && (s->reported_same >> i & 1))
			continue; /* the pool's value, which the server has */
		if (want[i] && (!have || (have != want[i] && strcmp(want[i], have) != 0)))
			rc = pg_guc_set(&sql, pg_guc_reported_names[i], want[i]);
	}
	/* others: what the client asked for against what tether set on this server */
	for (uint32_t i = 0; rc == 0 && i < c->gucs.n; i++) {
		const struct pg_param *p = &c->gucs.v[i];
		if (i < 64 ? !(others >> i & 1) : pg_guc_reported_index(p->name) >= 0)
			continue;
		const char *have = pg_params_get(&s->gucs, p->name);
		if (!have || strcmp(have, p->value) != 0) {
			rc = pg_guc_set(&sql, p->name, p->value);
			if (rc == 0)
				rc = pg_params_set(&s->gucs, p->name, p->value);
		}
	}
	/* (the SELECT comes first, the RESETs after it) */
	for (uint32_t i = 0; rc == 0 && i < s->gucs.n;) {
		const char *n = s->gucs.v[i].name;
		if (pg_params_get(&c->gucs, n)) {
			i++;
			continue;
		}
		struct evbuffer *b = pg_guc_buf(&sql);
		rc = b && evbuffer_add_printf(b, "%sRESET %s", evbuffer_get_length(b) ? ";" : "", n) >= 0 ? 0 : -1;
		pg_params_del(&s->gucs, n);
	}
	if (rc == 0 && sql) {
		const char *q = evbuffer_add(sql, "", 1) == 0 ? (const char *)evbuffer_pullup(sql, -1) : NULL;
		free(s->inject_error);
		s->inject_error = NULL;
		rc = q && pgproto_put_query(bufferevent_get_output(s->bev), q) == 0 &&
				     pg_expect_push(s, PG_EXP_QUERY_DROP, NULL) == 0
			     ? 0
			     : -1;
		if (rc == 0) {
			s->guc_pending = true;
			s->pool->guc_applies++;
		}
	}
	if (sql) {
		evbuffer_free(sql);
		s->guc_match_ok = false; /* (its settings change) */
	} else if (rc == 0) {
		pg_guc_matched(c, s);
	}
	return rc;
}

void pg_guc_reported(struct pg_client *c, const char *name, const char *value)
{
	const char *canon = pg_guc_reported_name(name);
	if (!canon)
		return;
	/* only remembered when it differs from what every client of the pool starts with */
	const char *pool = pg_params_get(&c->pool->params, canon);
	if (pool && strcmp(pool, value) == 0 && !pg_params_get(&c->gucs, canon))
		return;
	(void)!pg_params_set(&c->gucs, canon, value);
}

void pg_guc_applied(struct pg_client *c, struct pg_server *s)
{
	s->guc_pending = false;
	if (!c)
		return;
	if (s->inject_error) {
		pg_client_fail(c, "22023", "tether could not apply the connection's settings on the server: %s",
			       s->inject_error);
		return;
	}
	/* keep the server's spelling ("UTF8" for "utf-8") so the next comparison matches */
	for (uint32_t i = 0; i < c->gucs.n; i++) {
		const char *have = pg_params_get(&s->params, c->gucs.v[i].name);
		if (have && strcmp(have, c->gucs.v[i].value) != 0 && pg_guc_reported_name(c->gucs.v[i].name))
			(void)!pg_params_set(&c->gucs, c->gucs.v[i].name, have);
	}
}

void pg_guc_server_reset(struct pg_server *s)
{
	pg_params_clear(&s->gucs);
	s->guc_match_ok = false;
	s->tainted = false;
}
