/* Finding the credential: the Application Default Credentials chain, service-account and
 * authorized_user key files (jansson), the metadata server's address and static tokens. Errors
 * name the file, variable or field at fault and never quote what is in them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "credentials_internal.h"
#include "jwt.h"

#define CRED_FILE_MAX (1 << 20)

const char *credentials_source_kind_name(int kind)
{
	return credentials_conf_source_name(kind);
}

static const char *credentials_env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

/* Reads a whole small file; NULL with `err` filled. */
static char *credentials_read_file(const char *path, size_t *len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	char *buf = malloc(CRED_FILE_MAX + 1);
	size_t n = buf ? fread(buf, 1, CRED_FILE_MAX + 1, f) : 0;
	bool bad = ferror(f);
	fclose(f);
	if (!buf || bad) {
		snprintf(err, errlen, "cannot read %s", path);
		free(buf);
		return NULL;
	}
	if (n > CRED_FILE_MAX) {
		snprintf(err, errlen, "%s is larger than 1 MiB", path);
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

static const char *credentials_json_str(json_t *doc, const char *key)
{
	json_t *v = json_object_get(doc, key);
	return v && json_is_string(v) && json_string_length(v) > 0 ? json_string_value(v) : NULL;
}

int credentials_keyfile_parse(const char *path, const char *text, size_t len, struct cred_source *src, char *err,
			      size_t errlen)
{
	json_error_t jerr;
	int rc = -1;
	json_t *doc = json_loadb(text, len, 0, &jerr);
	if (!doc || !json_is_object(doc)) {
		/* jansson's message may quote the text around the error: report the position only. */
		if (doc)
			snprintf(err, errlen, "key file %s: not a JSON object", path);
		else
			snprintf(err, errlen, "key file %s: not valid JSON (line %d, column %d)", path, jerr.line,
				 jerr.column);
		goto done;
	}
	const char *type = credentials_json_str(doc, "type");
	if (!type) {
		snprintf(err, errlen, "key file %s: no \"type\" field", path);
		goto done;
	}
	const char *missing = NULL;
	if (strcmp(type, "service_account") == 0) {
		static const char *const need[] = { "client_email", "private_key", NULL };
		for (size_t i = 0; need[i] && !missing; i++)
			if (!credentials_json_str(doc, need[i]))
				missing = need[i];
		if (missing)
			goto missing;
		char kerr[128];
		src->key = jwt_key_from_pem(credentials_json_str(doc, "private_key"), kerr, sizeof(kerr));
		if (!src->key) {
			snprintf(err, errlen, "key file %s: private_key: %s", path, kerr);
			goto done;
		}
		src->kind = CRED_SOURCE_SERVICE_ACCOUNT;
		src->email = strdup(credentials_json_str(doc, "client_email"));
		const char *kid = credentials_json_str(doc, "private_key_id");
		src->key_id = kid ? strdup(kid) : NULL;
	} else if (strcmp(type, "authorized_user") == 0) {
		static const char *const need[] = { "client_id", "client_secret", "refresh_token", NULL };
		for (size_t i = 0; need[i] && !missing; i++)
			if (!credentials_json_str(doc, need[i]))
				missing = need[i];
		if (missing)
			goto missing;
		src->kind = CRED_SOURCE_AUTHORIZED_USER;
		src->client_id = strdup(credentials_json_str(doc, "client_id"));
		src->client_secret = strdup(credentials_json_str(doc, "client_secret"));
		src->refresh_token = strdup(credentials_json_str(doc, "refresh_token"));
	} else {
		char ts[64];
		credentials_sanitize(type, 48, ts, sizeof(ts));
		snprintf(err, errlen,
			 "key file %s: type \"%s\" is not supported (tether reads service_account and authorized_user "
			 "files)",
			 path, ts);
		goto done;
	}
	const char *uri = credentials_json_str(doc, "token_uri");
	src->token_uri = strdup(uri ? uri : CRED_DEFAULT_TOKEN_URI);
	rc = 0;
	goto done;
missing:
	snprintf(err, errlen, "key file %s: %s file without a \"%s\" string", path, type, missing);
done:
	json_decref(doc);
	return rc;
}

int credentials_keyfile_load(const char *path, struct cred_source *src, char *err, size_t errlen)
{
	size_t len = 0;
	char *text = credentials_read_file(path, &len, err, errlen);
	if (!text)
		return -1;
	int rc = credentials_keyfile_parse(path, text, len, src, err, errlen);
	/* The text held a private key or a refresh token: do not leave it in freed memory. */
	OPENSSL_cleanse(text, len);
	free(text);
	return rc;
}

char *credentials_adc_gcloud_path(void)
{
	char *out = NULL;
	const char *dir = credentials_env("CLOUDSDK_CONFIG");
	if (dir) {
		if (asprintf(&out, "%s/application_default_credentials.json", dir) < 0)
			out = NULL;
		return out;
	}
	const char *home = credentials_env("HOME");
	if (!home)
		return NULL;
	if (asprintf(&out, "%s/.config/gcloud/application_default_credentials.json", home) < 0)
		out = NULL;
	return out;
}

char *credentials_metadata_url(const char *configured)
{
	const char *h = configured && *configured ? configured : NULL;
	if (!h)
		h = credentials_env("GCE_METADATA_HOST");
	if (!h)
		h = credentials_env("GCE_METADATA_ROOT");
	if (!h)
		h = CRED_DEFAULT_METADATA_HOST;
	char *out = NULL;
	bool scheme = strncmp(h, "http://", 7) == 0 || strncmp(h, "https://", 8) == 0;
	if (asprintf(&out, "%s%s", scheme ? "" : "http://", h) < 0)
		return NULL;
	size_t n = strlen(out);
	while (n > 0 && out[n - 1] == '/')
		out[--n] = '\0';
	return out;
}

static int credentials_static_load(const struct credentials_conf *cc, struct cred_source *src, char *err,
				   size_t errlen)
{
	char *tok = NULL;
	if (cc->static_token_file && *cc->static_token_file) {
		size_t len = 0;
		char ferr[400];
		tok = credentials_read_file(cc->static_token_file, &len, ferr, sizeof(ferr));
		if (!tok) {
			snprintf(err, errlen, "credentials.static_token_file: %s", ferr);
			return -1;
		}
		if (asprintf(&src->origin, "static_token_file %s", cc->static_token_file) < 0)
			src->origin = NULL;
	} else {
		const char *name = cc->static_token_env ? cc->static_token_env : "";
		const char *v = credentials_env(name);
		if (!v) {
			snprintf(err, errlen, "credentials.static_token_env: environment variable %s is not set or empty",
				 name);
			return -1;
		}
		tok = strdup(v);
		if (asprintf(&src->origin, "static_token_env %s", name) < 0)
			src->origin = NULL;
	}
	if (!tok)
		return -1;
	/* Surrounding whitespace (a file's trailing newline) is not part of the token. */
	char *s = tok;
	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
		n--;
	bool bad = n == 0;
	for (size_t i = 0; i < n && !bad; i++)
		bad = (unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e;
	if (!bad)
		src->static_token = strndup(s, n);
	OPENSSL_cleanse(tok, strlen(tok));
	free(tok);
	if (bad) {
		snprintf(err, errlen, "%s: the token is empty or contains spaces or control characters",
			 src->origin ? src->origin : "static token");
		return -1;
	}
	src->kind = CRED_SOURCE_STATIC;
	return src->static_token ? 0 : -1;
}

/* A key file for an explicit or ADC-found path; `how` says where the path came from. */
static int credentials_file_source(const char *path, const char *how, int want, struct cred_source *src,
				   char *err, size_t errlen)
{
	char ferr[600];
	if (credentials_keyfile_load(path, src, ferr, sizeof(ferr)) != 0) {
		snprintf(err, errlen, "%s: %s", how, ferr);
		return -1;
	}
	if (want != CRED_SOURCE_AUTO && src->kind != want) {
		snprintf(err, errlen, "%s: key file %s is of type %s but credentials.source is %s", how, path,
			 credentials_source_kind_name(src->kind), credentials_source_kind_name(want));
		return -1;
	}
	if (asprintf(&src->origin, "%s (%s)", how, path) < 0)
		src->origin = NULL;
	return 0;
}

int credentials_source_resolve(const struct credentials_conf *cc, struct cred_source *src, char *err,
			       size_t errlen)
{
	memset(src, 0, sizeof(*src));
	int want = cc ? cc->source : CRED_SOURCE_NONE;
	int rc = -1;
	switch (want) {
	case CRED_SOURCE_NONE:
		src->kind = CRED_SOURCE_NONE;
		src->origin = strdup(cc ? "credentials.source is none" : "no credentials section");
		return 0;
	case CRED_SOURCE_STATIC:
		rc = credentials_static_load(cc, src, err, errlen);
		break;
	case CRED_SOURCE_METADATA:
		src->kind = CRED_SOURCE_METADATA;
		src->metadata_url = credentials_metadata_url(cc->metadata_host);
		src->origin = strdup("credentials.source metadata");
		return src->metadata_url ? 0 : -1;
	case CRED_SOURCE_SERVICE_ACCOUNT:
	case CRED_SOURCE_AUTHORIZED_USER:
		if (cc->key_file && *cc->key_file)
			rc = credentials_file_source(cc->key_file, "credentials.key_file", want, src, err, errlen);
		else if (credentials_env("GOOGLE_APPLICATION_CREDENTIALS"))
			rc = credentials_file_source(getenv("GOOGLE_APPLICATION_CREDENTIALS"),
						     "GOOGLE_APPLICATION_CREDENTIALS", want, src, err, errlen);
		else
			snprintf(err, errlen,
				 "credentials.source %s needs credentials.key_file or GOOGLE_APPLICATION_CREDENTIALS",
				 credentials_source_kind_name(want));
		break;
	default: { /* AUTO: Application Default Credentials order */
		if (cc->key_file && *cc->key_file) {
			rc = credentials_file_source(cc->key_file, "credentials.key_file", want, src, err, errlen);
			break;
		}
		if (credentials_env("GOOGLE_APPLICATION_CREDENTIALS")) {
			/* Set but unusable is an error, as in Google's libraries: never fall through
			 * silently to another identity. */
			rc = credentials_file_source(getenv("GOOGLE_APPLICATION_CREDENTIALS"),
						     "GOOGLE_APPLICATION_CREDENTIALS", want, src, err, errlen);
			break;
		}
		char *gcloud = credentials_adc_gcloud_path();
		if (gcloud && access(gcloud, F_OK) == 0) {
			rc = credentials_file_source(gcloud, "gcloud ADC file", want, src, err, errlen);
			free(gcloud);
			break;
		}
		free(gcloud);
		src->kind = CRED_SOURCE_METADATA;
		src->adc_fallback = true;
		src->metadata_url = credentials_metadata_url(cc->metadata_host);
		src->origin = strdup("metadata server (auto: no GOOGLE_APPLICATION_CREDENTIALS, no gcloud ADC file)");
		return src->metadata_url ? 0 : -1;
	}
	}
	if (rc != 0) {
		credentials_source_deinit(src);
		return -1;
	}
	if (cc->token_uri && *cc->token_uri) {
		free(src->token_uri);
		src->token_uri = strdup(cc->token_uri);
	}
	src->self_signed_jwt = cc->self_signed_jwt && src->kind == CRED_SOURCE_SERVICE_ACCOUNT;
	return 0;
}

static void credentials_free_secret(char *s)
{
	if (s) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

void credentials_source_deinit(struct cred_source *src)
{
	free(src->origin);
	free(src->metadata_url);
	EVP_PKEY_free(src->key);
	free(src->email);
	free(src->key_id);
	free(src->token_uri);
	free(src->client_id);
	credentials_free_secret(src->client_secret);
	credentials_free_secret(src->refresh_token);
	credentials_free_secret(src->static_token);
	memset(src, 0, sizeof(*src));
}
