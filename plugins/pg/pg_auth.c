/* Loading the users clients authenticate as: inline `postgres.auth.users` and a PgBouncer-style
 * users file ("name" "secret" per line), with SCRAM verifiers derived once here. */
#include "pg_auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "md5auth.h"

static int pg_auth_add(struct pg_auth *a, const char *name, const char *secret, char *err, size_t errlen)
{
	for (size_t i = 0; i < a->n; i++) {
		if (strcmp(a->users[i].name, name) == 0) {
			snprintf(err, errlen, "user \"%s\" is defined twice", name);
			return -1;
		}
	}
	struct pg_auth_user *n = realloc(a->users, (a->n + 1) * sizeof(*n));
	if (!n) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	a->users = n;
	struct pg_auth_user *u = &a->users[a->n];
	memset(u, 0, sizeof(*u));
	u->name = strdup(name);
	u->secret = strdup(secret);
	a->n++;
	if (!u->name || !u->secret) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (scram_is_verifier(secret)) {
		if (scram_verifier_parse(secret, &u->verifier) != SCRAM_OK) {
			snprintf(err, errlen, "user \"%s\": malformed SCRAM verifier", name);
			return -1;
		}
		u->have_verifier = true;
	} else if (!md5auth_is_hash(secret)) {
		if (scram_verifier_from_password(secret, SCRAM_DEFAULT_ITERATIONS, &u->verifier) != SCRAM_OK) {
			snprintf(err, errlen, "user \"%s\": cannot derive a SCRAM verifier", name);
			return -1;
		}
		u->have_verifier = true;
	}
	return 0;
}

/* One quoted field of a users-file line: "text" with "" standing for a quote. */
static const char *pg_auth_field(const char *p, char *out, size_t outlen)
{
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p != '"')
		return NULL;
	p++;
	size_t n = 0;
	for (;;) {
		if (*p == '\0' || *p == '\n')
			return NULL;
		if (*p == '"') {
			if (p[1] != '"')
				break;
			p++;
		}
		if (n + 1 >= outlen)
			return NULL;
		out[n++] = *p++;
	}
	out[n] = '\0';
	return p + 1;
}

static int pg_auth_load_file(struct pg_auth *a, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "users_file %s: %s", path, strerror(errno));
		return -1;
	}
	char line[8192], name[256], secret[4096 + 64];
	int lineno = 0, rc = 0;
	while (rc == 0 && fgets(line, sizeof(line), f)) {
		lineno++;
		const char *p = line;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0' || *p == '\n' || *p == '#' || *p == ';')
			continue;
		p = pg_auth_field(p, name, sizeof(name));
		if (p)
			p = pg_auth_field(p, secret, sizeof(secret));
		if (!p) {
			snprintf(err, errlen, "users_file %s:%d: expected \"user\" \"password\"", path, lineno);
			rc = -1;
			break;
		}
		char sub[256];
		if (pg_auth_add(a, name, secret, sub, sizeof(sub)) != 0) {
			snprintf(err, errlen, "users_file %s:%d: %s", path, lineno, sub);
			rc = -1;
		}
	}
	OPENSSL_cleanse(line, sizeof(line));
	OPENSSL_cleanse(secret, sizeof(secret));
	fclose(f);
	return rc;
}

int pg_auth_load(struct pg_auth *a, const struct pg_conf_auth *conf, char *err, size_t errlen)
{
	memset(a, 0, sizeof(*a));
	if (RAND_bytes(a->mock_secret, sizeof(a->mock_secret)) != 1) {
		snprintf(err, errlen, "no randomness for the auth mock secret");
		return -1;
	}
	for (size_t i = 0; i < conf->users.n; i++) {
		const struct pg_conf_user *u = CONF_ARRAY_AT(&conf->users, struct pg_conf_user, i);
		if (pg_auth_add(a, u->name, u->password, err, errlen) != 0)
			return -1;
	}
	if (conf->users_file && *conf->users_file)
		return pg_auth_load_file(a, conf->users_file, err, errlen);
	return 0;
}

void pg_auth_free(struct pg_auth *a)
{
	for (size_t i = 0; i < a->n; i++) {
		free(a->users[i].name);
		if (a->users[i].secret) {
			OPENSSL_cleanse(a->users[i].secret, strlen(a->users[i].secret));
			free(a->users[i].secret);
		}
		scram_verifier_wipe(&a->users[i].verifier);
	}
	free(a->users);
	OPENSSL_cleanse(a->mock_secret, sizeof(a->mock_secret));
	memset(a, 0, sizeof(*a));
}

const struct pg_auth_user *pg_auth_find(const struct pg_auth *a, const char *name)
{
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->users[i].name, name) == 0)
			return &a->users[i];
	return NULL;
}
