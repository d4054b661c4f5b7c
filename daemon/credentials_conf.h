/* The `credentials` config section: where Google credentials come from (ADC order, metadata
 * server, key files, a static token) and how their tokens are cached and refreshed. */
#ifndef TETHER_CREDENTIALS_CONF_H
#define TETHER_CREDENTIALS_CONF_H

#include <stdbool.h>
#include <stdint.h>

#include "conf.h"

enum credentials_source_kind {
	CRED_SOURCE_AUTO = 0,
	CRED_SOURCE_METADATA,
	CRED_SOURCE_SERVICE_ACCOUNT,
	CRED_SOURCE_AUTHORIZED_USER,
	CRED_SOURCE_STATIC,
	CRED_SOURCE_NONE,
};

struct credentials_conf {
	int source; /* enum credentials_source_kind */
	char *key_file;
	char *metadata_host;
	char *token_uri;
	struct conf_strlist scopes;
	bool self_signed_jwt;
	char *static_token_file;
	char *static_token_env;
	int64_t refresh_ahead;   /* ms */
	int64_t fetch_timeout;   /* ms */
	int64_t backoff_initial; /* ms */
	int64_t backoff_max;     /* ms */
	bool prefetch;
};

extern const struct conf_table core_conf_credentials;

/* "auto", "metadata", ... */
const char *credentials_conf_source_name(int source);

#endif
