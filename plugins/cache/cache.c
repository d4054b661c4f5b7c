/* The `cache` plugin: creates the read cache from its config section (Redis connection, rules
 * compiled to regexes), applies reloads, answers which statements to cache, and publishes the
 * running instance for the pooler (cache_instance). */
#include "cache_internal.h"

#include <stdlib.h>
#include <string.h>

#include "cache_admin.h"
#include "core.h"
#include "plugin.h"

/* The running plugin's cache, for the pooler (cache.h). Set in start, cleared in stop. */
static struct cache *cache_current;

struct cache *cache_instance(void)
{
	return cache_current;
}

const char *cache_bypass_reason_name(enum cache_bypass_reason r)
{
	static const char *const names[CACHE_BYPASS_NREASONS] = {
		"redis_down", "circuit_open", "pending_invalidations", "redis_error", "single_flight_timeout",
		"single_flight_failed", "invalidated", "shutdown", "in_transaction", "session_settings",
		"dependencies", "pipelined", "too_large", "schema_changed",
	};
	return (unsigned)r < CACHE_BYPASS_NREASONS ? names[r] : "unknown";
}

static void cache_rules_free(struct cache_rule *rules, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(rules[i].database);
		free(rules[i].fingerprint);
		if (rules[i].has_re)
			regfree(&rules[i].re);
	}
	free(rules);
}

/* Compiles the section's rules and safe-function list into `c`; on error leaves `c` as it was. */
static int cache_compile(struct cache *c, const struct cache_conf *conf)
{
	size_t n = conf->rules.n;
	struct cache_rule *rules = calloc(n ? n : 1, sizeof(*rules));
	const char **safe = calloc(conf->safe_functions.n ? conf->safe_functions.n : 1, sizeof(*safe));
	if (!rules || !safe)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		const struct cache_conf_rule *cr = CONF_ARRAY_AT(&conf->rules, struct cache_conf_rule, i);
		struct cache_rule *r = &rules[i];
		r->ttl = cr->ttl;
		if ((cr->database && !(r->database = strdup(cr->database))) ||
		    (cr->fingerprint && !(r->fingerprint = strdup(cr->fingerprint))))
			goto fail;
		if (cr->match) {
			if (regcomp(&r->re, cr->match, REG_EXTENDED | REG_ICASE | REG_NOSUB) != 0) {
				log_error(&c->log, "cache.rules[%zu].match does not compile", i);
				goto fail;
			}
			r->has_re = true;
		}
		if (i < c->nrules) { /* counts survive a reload by position */
			r->matches = c->rules[i].matches;
			r->hits = c->rules[i].hits;
			r->misses = c->rules[i].misses;
			r->bypasses = c->rules[i].bypasses;
		}
	}
	for (size_t i = 0; i < conf->safe_functions.n; i++)
		safe[i] = conf->safe_functions.items[i];
	cache_rules_free(c->rules, c->nrules);
	free(c->safe_functions);
	c->rules = rules;
	c->nrules = n;
	c->safe_functions = safe;
	c->nsafe_functions = conf->safe_functions.n;
	return 0;
fail:
	if (rules)
		cache_rules_free(rules, n);
	free(safe);
	return -1;
}

struct cache *cache_create(struct event_base *base, const struct cache_conf *conf, const struct log_src *log)
{
	static uint64_t gens;
	struct cache *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->gen = ++gens;
	c->base = base;
	c->conf = conf;
	c->log = log ? *log : (struct log_src){ "cache", 0 };
	struct cache_conf_addr addr;
	char err[200];
	if (cache_conf_parse_addr(conf->redis, &addr, err, sizeof(err)) != 0) {
		log_error(&c->log, "cache.redis: %s", err);
		free(c);
		return NULL;
	}
	if (addr.password)
		log_warn(&c->log, "cache.redis carries a password: put it in cache.password, where it is masked");
	struct cache_redis_opts o = {
		.base = base,
		.addr = &addr,
		.password = conf->password,
		.connect_timeout_ms = conf->connect_timeout,
		.command_timeout_ms = conf->command_timeout,
		.failure_threshold = conf->failure_threshold,
		.open_for_ms = conf->open_for,
		.log = &c->log,
		.on_ready = cache_inval_on_ready,
		.arg = c,
	};
	c->redis = cache_redis_create(&o);
	cache_conf_addr_deinit(&addr);
	c->prefix = strdup(conf->key_prefix ? conf->key_prefix : "tether:");
	if (!c->redis || !c->prefix || cache_compile(c, conf) != 0 || cache_store_init(c) != 0) {
		cache_destroy(c);
		return NULL;
	}
	cache_redis_start(c->redis);
	return c;
}

int cache_reload(struct cache *c, const struct cache_conf *conf)
{
	if (cache_compile(c, conf) != 0)
		return -1;
	c->conf = conf;
	cache_redis_set_limits(c->redis, conf->failure_threshold, conf->open_for);
	return 0;
}

void cache_destroy(struct cache *c)
{
	if (!c)
		return;
	c->destroying = true;
	cache_redis_destroy(c->redis); /* in-flight commands' callbacks free what they own */
	c->redis = NULL;
	cache_store_deinit(c);
	cache_rules_free(c->rules, c->nrules);
	free(c->safe_functions);
	free(c->prefix);
	free(c);
}

int cache_rule_match(struct cache *c, const char *database, const struct cache_sql_info *info, int64_t *ttl_ms)
{
	if (!info->cacheable || info->hint_nocache || !info->normalized)
		return CACHE_RULE_NONE;
	bool hint = info->hint && c->conf->hints == CACHE_HINTS_ALLOW;
	for (size_t i = 0; i < c->nrules; i++) {
		struct cache_rule *r = &c->rules[i];
		if (r->database && strcmp(r->database, database) != 0)
			continue;
		bool m = r->has_re ? regexec(&r->re, info->normalized, 0, NULL, 0) == 0
				   : (r->fingerprint && info->fingerprint && strcmp(r->fingerprint, info->fingerprint) == 0);
		if (!m)
			continue;
		r->matches++;
		*ttl_ms = hint && info->hint_ttl_ms ? info->hint_ttl_ms : r->ttl ? r->ttl : c->conf->default_ttl;
		return (int)i;
	}
	if (!hint)
		return CACHE_RULE_NONE;
	c->hint_matches++;
	*ttl_ms = info->hint_ttl_ms ? info->hint_ttl_ms : c->conf->default_ttl;
	return CACHE_RULE_HINT;
}

int cache_rule_match_memo(struct cache *c, const char *database, const struct cache_sql_info *info, int64_t *ttl_ms,
			  struct cache_rule_memo *m)
{
	if (m->gen != c->gen) {
		int64_t ttl = 0;
		m->rule = cache_rule_match(c, database, info, &ttl);
		m->ttl_ms = ttl;
		m->gen = c->gen;
	} else if (m->rule == CACHE_RULE_HINT) {
		c->hint_matches++;
	} else if (m->rule >= 0) {
		c->rules[m->rule].matches++;
	}
	if (m->rule != CACHE_RULE_NONE)
		*ttl_ms = m->ttl_ms;
	return m->rule;
}

void cache_rule_result(struct cache *c, int rule, enum cache_result_kind kind)
{
	uint64_t *hits, *misses, *bypasses;
	if (rule == CACHE_RULE_HINT) {
		hits = &c->hint_hits, misses = &c->hint_misses, bypasses = &c->hint_bypasses;
	} else if (rule >= 0 && (size_t)rule < c->nrules) {
		struct cache_rule *r = &c->rules[rule];
		hits = &r->hits, misses = &r->misses, bypasses = &r->bypasses;
	} else {
		return;
	}
	(*(kind == CACHE_HIT ? hits : kind == CACHE_MISS ? misses : bypasses))++;
}

void cache_count_bypass(struct cache *c, int rule, enum cache_bypass_reason reason)
{
	if ((unsigned)reason < CACHE_BYPASS_NREASONS)
		c->stats.bypasses[reason]++;
	cache_rule_result(c, rule, CACHE_BYPASS);
}

void cache_recount(struct cache *c, enum cache_result_kind was, enum cache_bypass_reason reason)
{
	uint64_t *n = was == CACHE_HIT ? &c->stats.hits : was == CACHE_MISS ? &c->stats.misses : NULL;
	if (n && *n)
		(*n)--;
	if ((unsigned)reason < CACHE_BYPASS_NREASONS)
		c->stats.bypasses[reason]++;
}

int64_t cache_schema_ttl(struct cache *c)
{
	return c->conf->schema_ttl;
}

uint64_t cache_max_entry_size(struct cache *c)
{
	return c->conf->max_entry_size;
}

size_t cache_rule_count(struct cache *c)
{
	return c->nrules;
}

void cache_rule_get(struct cache *c, size_t i, struct cache_rule_info *out)
{
	const struct cache_rule *r = &c->rules[i];
	const struct cache_conf_rule *cr =
		i < c->conf->rules.n ? CONF_ARRAY_AT(&c->conf->rules, struct cache_conf_rule, i) : NULL;
	*out = (struct cache_rule_info){ .database = r->database,
					 .match = cr ? cr->match : NULL,
					 .fingerprint = r->fingerprint,
					 .ttl_ms = r->ttl ? r->ttl : c->conf->default_ttl,
					 .matches = r->matches,
					 .hits = r->hits,
					 .misses = r->misses,
					 .bypasses = r->bypasses };
}

void cache_rule_hint(struct cache *c, struct cache_rule_info *out)
{
	*out = (struct cache_rule_info){ .ttl_ms = c->conf->default_ttl,
					 .matches = c->hint_matches,
					 .hits = c->hint_hits,
					 .misses = c->hint_misses,
					 .bypasses = c->hint_bypasses };
}

struct cache_sql_opts cache_sql_options(struct cache *c)
{
	return (struct cache_sql_opts){ .backslash_strings = false,
					.safe_functions = c->safe_functions,
					.nsafe_functions = c->nsafe_functions };
}

void cache_get_stats(struct cache *c, struct cache_stats *out)
{
	*out = c->stats;
	out->redis_errors = c->redis ? cache_redis_errors(c->redis) : 0;
	out->pending_tables = c->pending_tables;
	out->speculative_used = c->spec_used;
	out->speculative_wasted = c->spec_wasted;
	out->pending_everything = c->pending_global;
	out->circuit = c->redis ? (int)cache_redis_breaker(c->redis) : 1;
	out->redis_state = c->redis ? cache_redis_state_name(c->redis) : "down";
}

/* --- the plugin --- */

struct cache_plugin_inst {
	struct core *core;
	struct cache *cache;
	struct log_src log;
	bool mounted;
};

static void *cache_plugin_init(struct core *core, const void *conf)
{
	struct cache_plugin_inst *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->core = core;
	p->log = (struct log_src){ "cache", 0 };
	p->cache = cache_create(core_base(core), conf, &p->log);
	if (!p->cache) {
		free(p);
		return NULL;
	}
	return p;
}

static int cache_plugin_start(void *inst)
{
	struct cache_plugin_inst *p = inst;
	if (cache_admin_start(p->cache, p->core) != 0)
		return -1;
	p->mounted = true;
	cache_current = p->cache;
	return 0;
}

static void cache_plugin_reload(void *inst, const void *conf)
{
	struct cache_plugin_inst *p = inst;
	if (cache_reload(p->cache, conf) != 0)
		log_error(&p->log, "the new cache rules do not compile; keeping the old ones");
}

static void cache_plugin_drain(void *inst, void (*done)(void *arg), void *arg)
{
	/* The pooler drains first (it holds the lookups and invalidations in flight). */
	done(arg);
}

static void cache_plugin_stop(void *inst)
{
	struct cache_plugin_inst *p = inst;
	if (cache_current == p->cache)
		cache_current = NULL;
	if (p->mounted)
		cache_admin_stop(p->cache, p->core);
	cache_destroy(p->cache);
	free(p);
}

static bool cache_plugin_ready(void *inst, char *reason, size_t len)
{
	return true; /* Redis trouble means bypass, never unreadiness */
}

const struct plugin cache_plugin = {
	.name = "cache",
	.description = "read cache in Redis for the PostgreSQL pooler",
	.conf = &cache_conf_table,
	.init = cache_plugin_init,
	.start = cache_plugin_start,
	.reload = cache_plugin_reload,
	.drain = cache_plugin_drain,
	.stop = cache_plugin_stop,
	.ready = cache_plugin_ready,
};
