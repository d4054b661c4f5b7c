/* Builds cache keys: tagged, length-prefixed fields collected in a buffer and hashed with
 * SHA-256 (OpenSSL EVP) in one call, with session settings added in name order at the end. */
#include "cache_key.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* for SHA256_Init and friends (cache_key_digest) */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

/* Field tags; the values are part of the key format (change CACHE_KEY_VERSION with them). */
enum {
	CACHE_KEY_T_DATABASE = 1,
	CACHE_KEY_T_USER,
	CACHE_KEY_T_STATEMENT,
	CACHE_KEY_T_PROTOCOL,
	CACHE_KEY_T_PARAM_TYPES,
	CACHE_KEY_T_PARAM,
	CACHE_KEY_T_PARAM_NULL,
	CACHE_KEY_T_RESULT_FORMATS,
	CACHE_KEY_T_SETTING,
	CACHE_KEY_T_FIELD,
};

#define CACHE_KEY_VERSION "tether-cache-key-1"

struct cache_key_setting {
	char *name; /* lower-cased */
	char *value;
};

static void cache_key_raw(struct cache_key *k, const void *data, size_t len)
{
	if (k->failed || !len)
		return;
	if (k->len + len > k->cap) {
		size_t cap = k->cap * 2;
		while (cap < k->len + len)
			cap *= 2;
		unsigned char *nb = k->buf == k->inline_buf ? malloc(cap) : realloc(k->buf, cap);
		if (!nb) {
			k->failed = true;
			return;
		}
		if (k->buf == k->inline_buf)
			memcpy(nb, k->inline_buf, k->len);
		k->buf = nb;
		k->cap = cap;
	}
	memcpy(k->buf + k->len, data, len);
	k->len += len;
}

static void cache_key_u32(struct cache_key *k, uint32_t v)
{
	unsigned char b[4] = { (unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8),
			       (unsigned char)v };
	cache_key_raw(k, b, 4);
}

static void cache_key_tagged(struct cache_key *k, unsigned char tag, const void *data, size_t len)
{
	cache_key_raw(k, &tag, 1);
	cache_key_u32(k, (uint32_t)len);
	if (len > UINT32_MAX)
		cache_key_u32(k, (uint32_t)(len >> 32));
	cache_key_raw(k, data, len);
}

int cache_key_digest(const void *data, size_t len, unsigned char out[CACHE_KEY_LEN])
{
	/* OpenSSL's SHA-256 itself (with the CPU's SHA extensions where it has them), not EVP:
	 * EVP_DigestInit_ex allocates and frees a provider context for every digest, and a key's
	 * digest is a few blocks. The low-level calls are deprecated in OpenSSL 3 but kept. */
	SHA256_CTX ctx;
	if (SHA256_Init(&ctx) != 1 || SHA256_Update(&ctx, data, len) != 1 || SHA256_Final(out, &ctx) != 1)
		return -1;
	return 0;
}

int cache_key_init(struct cache_key *k)
{
	k->buf = k->inline_buf;
	k->len = 0;
	k->cap = sizeof(k->inline_buf);
	k->settings = NULL;
	k->nsettings = k->cap_settings = 0;
	k->failed = false;
	cache_key_raw(k, CACHE_KEY_VERSION, sizeof(CACHE_KEY_VERSION));
	return 0;
}

void cache_key_deinit(struct cache_key *k)
{
	for (size_t i = 0; i < k->nsettings; i++) {
		free(k->settings[i].name);
		free(k->settings[i].value);
	}
	free(k->settings);
	if (k->buf != k->inline_buf)
		free(k->buf);
	k->buf = k->inline_buf;
	k->len = 0;
	k->settings = NULL;
	k->nsettings = k->cap_settings = 0;
}

void cache_key_database(struct cache_key *k, const char *db)
{
	cache_key_tagged(k, CACHE_KEY_T_DATABASE, db, strlen(db));
}

void cache_key_user(struct cache_key *k, const char *user)
{
	cache_key_tagged(k, CACHE_KEY_T_USER, user, strlen(user));
}

void cache_key_statement(struct cache_key *k, const char *normalized)
{
	cache_key_tagged(k, CACHE_KEY_T_STATEMENT, normalized, strlen(normalized));
}

void cache_key_protocol(struct cache_key *k, const char *tag)
{
	cache_key_tagged(k, CACHE_KEY_T_PROTOCOL, tag, strlen(tag));
}

void cache_key_param_types(struct cache_key *k, const uint32_t *oids, size_t n)
{
	unsigned char tag = CACHE_KEY_T_PARAM_TYPES;
	cache_key_raw(k, &tag, 1);
	cache_key_u32(k, (uint32_t)n);
	for (size_t i = 0; i < n; i++)
		cache_key_u32(k, oids[i]);
}

void cache_key_param(struct cache_key *k, int16_t format, const void *value, int32_t len)
{
	unsigned char f[2] = { (unsigned char)((uint16_t)format >> 8), (unsigned char)format };
	if (len < 0) {
		cache_key_tagged(k, CACHE_KEY_T_PARAM_NULL, f, 2);
		return;
	}
	cache_key_tagged(k, CACHE_KEY_T_PARAM, f, 2);
	cache_key_u32(k, (uint32_t)len);
	cache_key_raw(k, value, (size_t)len);
}

void cache_key_result_formats(struct cache_key *k, const int16_t *formats, size_t n)
{
	unsigned char tag = CACHE_KEY_T_RESULT_FORMATS;
	cache_key_raw(k, &tag, 1);
	cache_key_u32(k, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		unsigned char f[2] = { (unsigned char)((uint16_t)formats[i] >> 8), (unsigned char)formats[i] };
		cache_key_raw(k, f, 2);
	}
}

void cache_key_field(struct cache_key *k, const char *tag, const void *data, size_t len)
{
	unsigned char t = CACHE_KEY_T_FIELD;
	cache_key_raw(k, &t, 1);
	cache_key_u32(k, (uint32_t)strlen(tag));
	cache_key_raw(k, tag, strlen(tag));
	cache_key_u32(k, (uint32_t)len);
	cache_key_raw(k, data, len);
}

bool cache_key_setting_matters(const char *name)
{
	static const char *const exact[] = {
		"application_name", "statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout",
		"idle_session_timeout", "transaction_timeout", "default_transaction_read_only",
		"default_transaction_isolation", "default_transaction_deferrable", "in_hot_standby",
		"is_superuser", "server_version", "server_version_num", "server_encoding", "integer_datetimes",
		"work_mem", "maintenance_work_mem", "temp_buffers", "hash_mem_multiplier", "client_min_messages",
		"random_page_cost", "seq_page_cost", "effective_cache_size", "effective_io_concurrency",
		"from_collapse_limit", "join_collapse_limit", "plan_cache_mode", "tcp_keepalives_idle",
		"tcp_keepalives_interval", "tcp_keepalives_count", "tcp_user_timeout", "scram_iterations",
		"synchronous_commit", "commit_delay", "commit_siblings", "statement_mem", "temp_file_limit",
		"default_statistics_target", "constraint_exclusion", "cursor_tuple_fraction", "geqo",
		"force_parallel_mode", "debug_parallel_query", "huge_pages", NULL,
	};
	static const char *const prefixes[] = { "enable_", "jit", "log_", "cpu_", "parallel_", "max_parallel_",
						"min_parallel_", "geqo_", "track_", "debug_", "auto_explain.",
						"pg_stat_statements.", NULL };
	for (size_t i = 0; exact[i]; i++)
		if (strcasecmp(exact[i], name) == 0)
			return false;
	for (size_t i = 0; prefixes[i]; i++)
		if (strncasecmp(prefixes[i], name, strlen(prefixes[i])) == 0)
			return false;
	return true;
}

bool cache_key_setting(struct cache_key *k, const char *name, const char *value)
{
	if (!cache_key_setting_matters(name))
		return false;
	char *n = strdup(name), *v = strdup(value ? value : "");
	if (!n || !v) {
		free(n);
		free(v);
		k->failed = true;
		return true;
	}
	for (char *p = n; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	for (size_t i = 0; i < k->nsettings; i++) {
		if (strcmp(k->settings[i].name, n) == 0) { /* the later value wins, as in the server */
			free(n);
			free(k->settings[i].value);
			k->settings[i].value = v;
			return true;
		}
	}
	if (k->nsettings == k->cap_settings) {
		size_t cap = k->cap_settings ? k->cap_settings * 2 : 16;
		struct cache_key_setting *ns = realloc(k->settings, cap * sizeof(*ns));
		if (!ns) {
			free(n);
			free(v);
			k->failed = true;
			return true;
		}
		k->settings = ns;
		k->cap_settings = cap;
	}
	k->settings[k->nsettings++] = (struct cache_key_setting){ n, v };
	return true;
}

static int cache_key_setting_cmp(const void *a, const void *b)
{
	return strcmp(((const struct cache_key_setting *)a)->name, ((const struct cache_key_setting *)b)->name);
}

int cache_key_final(struct cache_key *k, unsigned char out[CACHE_KEY_LEN])
{
	if (k->nsettings > 1)
		qsort(k->settings, k->nsettings, sizeof(*k->settings), cache_key_setting_cmp);
	for (size_t i = 0; i < k->nsettings; i++) {
		unsigned char tag = CACHE_KEY_T_SETTING;
		cache_key_raw(k, &tag, 1);
		cache_key_u32(k, (uint32_t)strlen(k->settings[i].name));
		cache_key_raw(k, k->settings[i].name, strlen(k->settings[i].name));
		cache_key_u32(k, (uint32_t)strlen(k->settings[i].value));
		cache_key_raw(k, k->settings[i].value, strlen(k->settings[i].value));
	}
	if (k->failed)
		return -1;
	return cache_key_digest(k->buf, k->len, out);
}

void cache_key_hex(const unsigned char *in, size_t len, char *out)
{
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = hex[in[i] >> 4];
		out[2 * i + 1] = hex[in[i] & 15];
	}
	out[2 * len] = '\0';
}
