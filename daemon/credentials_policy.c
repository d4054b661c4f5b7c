/* The credentials' pure decisions, kept free of I/O so unit tests can drive them with an
 * injected clock: refresh timing, backoff, scope-set keys, form escaping and token responses. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "credentials_internal.h"
#include "jwt.h"

#define CRED_MIN_REFRESH_MS 1000

void credentials_timing_set(struct cred_timing *t, int64_t now, int64_t expires_in_ms, int64_t refresh_ahead_ms,
			    double rnd)
{
	t->obtained = now;
	if (expires_in_ms == CRED_NEVER) {
		t->expires = t->refresh = CRED_NEVER;
		return;
	}
	if (expires_in_ms < 0)
		expires_in_ms = 0;
	t->expires = now + expires_in_ms;
	int64_t ahead = refresh_ahead_ms < expires_in_ms / 2 ? refresh_ahead_ms : expires_in_ms / 2;
	int64_t jitter = (int64_t)((double)(ahead / 4) * rnd);
	int64_t at = expires_in_ms - ahead - jitter;
	/* A server that keeps handing out nearly expired tokens must not be asked in a tight loop;
	 * only a token shorter-lived than the floor itself is refreshed sooner (at half its life). */
	if (at < CRED_MIN_REFRESH_MS)
		at = expires_in_ms > 2 * CRED_MIN_REFRESH_MS ? CRED_MIN_REFRESH_MS : expires_in_ms / 2;
	t->refresh = now + at;
}

bool credentials_timing_valid(const struct cred_timing *t, int64_t now)
{
	return t->expires != 0 && now < t->expires;
}

bool credentials_timing_usable(const struct cred_timing *t, int64_t now)
{
	if (t->expires == CRED_NEVER)
		return true;
	if (t->expires == 0)
		return false;
	int64_t margin = (t->expires - t->obtained) / 4;
	if (margin > 10000)
		margin = 10000;
	return now < t->expires - margin;
}

int64_t credentials_backoff_ms(int failures, int64_t initial_ms, int64_t max_ms, double rnd)
{
	int64_t ceil = initial_ms;
	for (int i = 1; i < failures && ceil < max_ms; i++)
		ceil *= 2;
	if (ceil > max_ms)
		ceil = max_ms;
	int64_t floor = initial_ms / 2;
	if (floor > ceil)
		floor = ceil;
	return floor + (int64_t)((double)(ceil - floor) * rnd);
}

static int credentials_strcmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

char *credentials_scopes_normalize(const char *scopes)
{
	char *copy = strdup(scopes ? scopes : "");
	if (!copy)
		return NULL;
	size_t n = 0, cap = 8;
	char **v = malloc(cap * sizeof(*v));
	char *out = NULL;
	if (!v)
		goto done;
	char *save = NULL;
	for (char *tok = strtok_r(copy, " ,\t\n", &save); tok; tok = strtok_r(NULL, " ,\t\n", &save)) {
		if (n == cap) {
			char **nv = realloc(v, (cap *= 2) * sizeof(*v));
			if (!nv)
				goto done;
			v = nv;
		}
		v[n++] = tok;
	}
	qsort(v, n, sizeof(*v), credentials_strcmp);
	size_t len = 1;
	for (size_t i = 0; i < n; i++)
		len += strlen(v[i]) + 1;
	out = malloc(len);
	if (!out)
		goto done;
	char *o = out;
	*o = '\0';
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && strcmp(v[i], v[i - 1]) == 0)
			continue;
		if (o != out)
			*o++ = ' ';
		size_t l = strlen(v[i]);
		memcpy(o, v[i], l);
		o += l;
		*o = '\0';
	}
done:
	free(v);
	free(copy);
	return out;
}

char *credentials_urlencode(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = malloc(strlen(s) * 3 + 1);
	if (!out)
		return NULL;
	char *o = out;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~') {
			*o++ = (char)*p;
		} else {
			*o++ = '%';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		}
	}
	*o = '\0';
	return out;
}

void credentials_sanitize(const char *s, size_t n, char *out, size_t outlen)
{
	size_t o = 0;
	if (outlen == 0)
		return;
	for (size_t i = 0; s && i < n && s[i] && o + 1 < outlen; i++)
		out[o++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : ' ';
	out[o] = '\0';
}

int credentials_jwt_expires_in(const char *jwt, time_t now_wall, int64_t *expires_in_ms)
{
	json_t *claims = jwt_decode_part(jwt, 1);
	json_t *exp = claims ? json_object_get(claims, "exp") : NULL;
	int rc = -1;
	if (exp && json_is_integer(exp)) {
		*expires_in_ms = ((int64_t)json_integer_value(exp) - (int64_t)now_wall) * 1000;
		rc = 0;
	}
	json_decref(claims);
	return rc;
}

int credentials_parse_token_response(int status, const char *body, size_t len, const char *field, time_t now_wall,
				     char **token, int64_t *expires_in_ms, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *doc = json_loadb(body, len, 0, &jerr);
	int rc = -1;
	*token = NULL;
	if (status < 200 || status > 299) {
		/* OAuth2 errors (RFC 6749 5.2) are safe to quote: a code and a description. */
		json_t *e = doc && json_is_object(doc) ? json_object_get(doc, "error") : NULL;
		json_t *d = doc && json_is_object(doc) ? json_object_get(doc, "error_description") : NULL;
		if (e && json_is_object(e)) { /* Google's API error shape */
			d = json_object_get(e, "message");
			e = json_object_get(e, "status");
		}
		char es[96] = "", ds[200] = "";
		if (e && json_is_string(e))
			credentials_sanitize(json_string_value(e), 80, es, sizeof(es));
		if (d && json_is_string(d))
			credentials_sanitize(json_string_value(d), 180, ds, sizeof(ds));
		snprintf(err, errlen, "HTTP %d%s%s%s%s", status, es[0] ? ": " : "", es, ds[0] ? ": " : "", ds);
		goto done;
	}
	if (!doc || !json_is_object(doc)) {
		snprintf(err, errlen, "HTTP %d with a body that is not a JSON object", status);
		goto done;
	}
	json_t *tok = json_object_get(doc, field);
	if (!tok || !json_is_string(tok) || json_string_length(tok) == 0) {
		snprintf(err, errlen, "HTTP %d without %s in the answer", status, field);
		goto done;
	}
	if (strcmp(field, "id_token") == 0) {
		if (credentials_jwt_expires_in(json_string_value(tok), now_wall, expires_in_ms) != 0) {
			snprintf(err, errlen, "the id_token received has no exp claim");
			goto done;
		}
	} else {
		json_t *exp = json_object_get(doc, "expires_in");
		if (exp && json_is_integer(exp))
			*expires_in_ms = (int64_t)json_integer_value(exp) * 1000;
		else if (exp && json_is_string(exp) && atoll(json_string_value(exp)) > 0)
			*expires_in_ms = atoll(json_string_value(exp)) * 1000; /* some servers quote it */
		else {
			snprintf(err, errlen, "HTTP %d without a numeric expires_in in the answer", status);
			goto done;
		}
		json_t *type = json_object_get(doc, "token_type");
		if (type && json_is_string(type) && strcasecmp(json_string_value(type), "Bearer") != 0) {
			char ts[40];
			credentials_sanitize(json_string_value(type), 32, ts, sizeof(ts));
			snprintf(err, errlen, "token_type is \"%s\", not Bearer", ts);
			goto done;
		}
	}
	if (*expires_in_ms <= 0) {
		snprintf(err, errlen, "the token received has already expired");
		goto done;
	}
	*token = strdup(json_string_value(tok));
	if (!*token) {
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	rc = 0;
done:
	json_decref(doc);
	return rc;
}
