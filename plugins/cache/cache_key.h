/* Cache keys: a SHA-256 over everything that changes the bytes a client receives
 * for a statement (database, user, normalized statement, parameter types, values and formats,
 * result formats, and the session settings that change output). Every field is tagged and
 * length-prefixed, so no two different inputs share a key by concatenation; settings are
 * sorted by name at the end, so their order does not matter. */
#ifndef TETHER_CACHE_KEY_H
#define TETHER_CACHE_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CACHE_KEY_LEN 32 /* SHA-256 */

struct cache_key_setting;

/* Embedded builder: cache_key_init, any number of the adders (fields other than settings are
 * hashed in call order, so call them in a fixed order), cache_key_final, cache_key_deinit.
 * An allocation failure is remembered and reported by cache_key_final. */
#define CACHE_KEY_INLINE 512 /* key material held in the struct; more goes to the heap */
struct cache_key {
	unsigned char *buf; /* the key material, hashed in one go by cache_key_final */
	size_t len, cap;
	unsigned char inline_buf[CACHE_KEY_INLINE];
	struct cache_key_setting *settings;
	size_t nsettings, cap_settings;
	bool failed;
};

int cache_key_init(struct cache_key *k) __attribute__((warn_unused_result));
void cache_key_deinit(struct cache_key *k);

void cache_key_database(struct cache_key *k, const char *db);
void cache_key_user(struct cache_key *k, const char *user);
/* The normalized statement text (cache_sql_info.normalized). */
void cache_key_statement(struct cache_key *k, const char *normalized);
/* How the statement came: "simple" (Query) or "extended" (Parse/Bind/Execute); the replayed
 * bytes differ. Any short tag the caller chooses. */
void cache_key_protocol(struct cache_key *k, const char *tag);
/* Parse's parameter type OIDs (0 = unspecified): `$1` as int4 and as text can differ. */
void cache_key_param_types(struct cache_key *k, const uint32_t *oids, size_t n);
/* One Bind parameter, in order: its format (0 text, 1 binary) and value; len < 0 is NULL. */
void cache_key_param(struct cache_key *k, int16_t format, const void *value, int32_t len);
/* Bind's result-column format codes as sent (none, one for all, or one per column). */
void cache_key_result_formats(struct cache_key *k, const int16_t *formats, size_t n);
/* A session setting (name case-insensitive, value exact). Returns false, and adds nothing, for
 * settings that cannot change result bytes (cache_key_setting_matters). */
bool cache_key_setting(struct cache_key *k, const char *name, const char *value);
/* Any other field the caller wants in the key (tag names it). */
void cache_key_field(struct cache_key *k, const char *tag, const void *data, size_t len);
/* Writes the digest. Returns 0, or -1 after an allocation failure (do not cache then). */
int cache_key_final(struct cache_key *k, unsigned char out[CACHE_KEY_LEN]) __attribute__((warn_unused_result));

/* False for settings known not to change the bytes of a result (application_name, timeouts,
 * planner costs and switches, logging, memory sizes ...); every other setting is kept, so an
 * unknown one splits the key rather than merging results that may differ. */
bool cache_key_setting_matters(const char *name);

/* SHA-256 of data in one call. 0, or -1. */
int cache_key_digest(const void *data, size_t len, unsigned char out[CACHE_KEY_LEN])
	__attribute__((warn_unused_result));

/* Lower-case hex of `len` bytes into out (2*len+1 bytes). */
void cache_key_hex(const unsigned char *in, size_t len, char *out);

#endif
