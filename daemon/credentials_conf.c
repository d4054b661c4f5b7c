/* The `credentials` section's key table and cross-key checks. */
#include "credentials_conf.h"

#include <stddef.h>

static const char *const credentials_conf_sources[] = { "auto",   "metadata", "service_account", "authorized_user",
							"static", "none",     NULL };

const char *credentials_conf_source_name(int source)
{
	if (source < 0 || source > CRED_SOURCE_NONE)
		return "?";
	return credentials_conf_sources[source];
}

static int credentials_conf_validate(void *obj, struct conf_errors *errs)
{
	struct credentials_conf *cc = obj;
	int rc = 0;
	bool file = cc->static_token_file && *cc->static_token_file;
	bool env = cc->static_token_env && *cc->static_token_env;
	if (cc->source == CRED_SOURCE_STATIC && !file && !env) {
		conf_errorf(errs, obj, "source", "source static needs static_token_file or static_token_env");
		rc = -1;
	}
	if (file && env) {
		conf_errorf(errs, obj, "static_token_env", "set static_token_file or static_token_env, not both");
		rc = -1;
	}
	if (cc->backoff_initial > cc->backoff_max) {
		conf_errorf(errs, obj, "backoff_initial", "backoff_initial is larger than backoff_max");
		rc = -1;
	}
	for (size_t i = 0; i < cc->scopes.n; i++) {
		const char *s = cc->scopes.items[i];
		for (; *s; s++)
			if (*s == ' ' || *s == ',' || *s == '&' || *s == '"' || (unsigned char)*s < 0x21) {
				conf_errorf(errs, obj, "scopes", "scope \"%s\" contains a space, comma or control character",
					    cc->scopes.items[i]);
				rc = -1;
				break;
			}
	}
	return rc;
}

#define CC(f) offsetof(struct credentials_conf, f)

static const struct conf_key credentials_conf_keys[] = {
	{ "source", CONF_ENUM, 0, CC(source), "auto", 0, 0, credentials_conf_sources, NULL,
	  "Where tokens come from. auto follows Application Default Credentials: the key file named by "
	  "GOOGLE_APPLICATION_CREDENTIALS, then gcloud's ADC file "
	  "($CLOUDSDK_CONFIG or ~/.config/gcloud/application_default_credentials.json), then the "
	  "metadata server. metadata: the metadata server (Cloud Run, GKE Workload Identity, GCE). "
	  "service_account / authorized_user: the key_file of that type. static: a fixed token "
	  "(static_token_file or static_token_env). none: no credentials; callers get an error." },
	{ "key_file", CONF_STRING, 0, CC(key_file), NULL, 0, 0, NULL, NULL,
	  "Service-account key or authorized_user JSON file (default: $GOOGLE_APPLICATION_CREDENTIALS)." },
	{ "metadata_host", CONF_STRING, 0, CC(metadata_host), NULL, 0, 0, NULL, NULL,
	  "Metadata server as host[:port] or http://host[:port] (default: $GCE_METADATA_HOST, then "
	  "$GCE_METADATA_ROOT, then metadata.google.internal)." },
	{ "token_uri", CONF_STRING, 0, CC(token_uri), NULL, 0, 0, NULL, NULL,
	  "OAuth2 token endpoint for service_account and authorized_user credentials (default: the key "
	  "file's token_uri, else https://oauth2.googleapis.com/token)." },
	{ "scopes", CONF_STRLIST, 0, CC(scopes), "[\"https://www.googleapis.com/auth/cloud-platform\"]", 0, 0,
	  NULL, NULL,
	  "OAuth2 scopes of tokens that callers ask for without naming scopes; fetched at start-up. The "
	  "metadata server gets them as ?scopes=." },
	{ "self_signed_jwt", CONF_BOOL, 0, CC(self_signed_jwt), "false", 0, 0, NULL, NULL,
	  "service_account only: use a JWT signed with the key (AIP-4111, scope claim) directly as the "
	  "bearer token instead of exchanging it at token_uri. Only for APIs that accept it." },
	{ "static_token_file", CONF_STRING, 0, CC(static_token_file), NULL, 0, 0, NULL, NULL,
	  "source static: file holding the token (surrounding whitespace ignored); read at start-up." },
	{ "static_token_env", CONF_STRING, 0, CC(static_token_env), NULL, 0, 0, NULL, NULL,
	  "source static: NAME of the environment variable holding the token (not the token itself)." },
	{ "refresh_ahead", CONF_DURATION, 0, CC(refresh_ahead), "5m", 0, 86400000, NULL, NULL,
	  "Refresh a token this long before it expires (at most half its lifetime), minus up to a "
	  "quarter more of random jitter; the old token is used until the new one arrives." },
	{ "fetch_timeout", CONF_DURATION, 0, CC(fetch_timeout), "10s", 100, 600000, NULL, NULL,
	  "Longest a caller waits for a token (and bound of one fetch); then it gets an error that the "
	  "HTTP forwarding turns into 503." },
	{ "backoff_initial", CONF_DURATION, 0, CC(backoff_initial), "1s", 10, 3600000, NULL, NULL,
	  "After a failed fetch, wait up to this long (random, doubling per failure) before the next." },
	{ "backoff_max", CONF_DURATION, 0, CC(backoff_max), "30s", 10, 3600000, NULL, NULL,
	  "Ceiling of the wait between failed fetches." },
	{ "prefetch", CONF_BOOL, 0, CC(prefetch), "true", 0, 0, NULL, NULL,
	  "Fetch a token for `scopes` at start-up, so the first request does not wait for one." },
	{ NULL }
};

const struct conf_table core_conf_credentials = {
	.name = "credentials",
	.desc = "Google credentials for the forwarding plugins (and later IAM database login). Tokens are "
		"cached per scope set and refreshed before they expire; they never appear in logs, errors "
		"or metrics. Absent: no credentials (as source: none).",
	.keys = credentials_conf_keys,
	.size = sizeof(struct credentials_conf),
	.validate = credentials_conf_validate,
	.reference_commented = true,
};
