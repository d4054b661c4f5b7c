/* Client authentication for the pooler: the users tether knows (inline in the config or in a
 * PgBouncer-style users file), with SCRAM verifiers derived once at load, not per login. */
#ifndef TETHER_PG_AUTH_H
#define TETHER_PG_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pg_conf.h"
#include "scram.h"

struct pg_auth_user {
	char *name;
	char *secret; /* plaintext, "md5<hex>" or a SCRAM verifier, as configured */
	struct scram_verifier verifier;
	bool have_verifier; /* plaintext and SCRAM secrets; an md5 hash cannot do SCRAM */
};

struct pg_auth {
	struct pg_auth_user *users;
	size_t n;
	uint8_t mock_secret[32]; /* salts for unknown users, stable for the process */
};

/* Loads inline users and users_file. Errors name the file and line, never a secret. */
int pg_auth_load(struct pg_auth *a, const struct pg_conf_auth *conf, char *err, size_t errlen);
void pg_auth_free(struct pg_auth *a);
const struct pg_auth_user *pg_auth_find(const struct pg_auth *a, const char *name);

#endif
