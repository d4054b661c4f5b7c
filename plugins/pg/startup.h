/* Parsing of the packet a PostgreSQL client opens with: StartupMessage, SSLRequest,
 * GSSENCRequest or CancelRequest. */
#ifndef TETHER_STARTUP_H
#define TETHER_STARTUP_H

#include <stddef.h>
#include <stdint.h>

/* Larger than PostgreSQL's own 10000-byte limit, so anything a real client sends fits. */
#define STARTUP_MAX_PACKET 10240

enum startup_kind {
	STARTUP_KIND_MESSAGE = 1, /* StartupMessage, protocol 3.x */
	STARTUP_KIND_SSL,         /* SSLRequest: answer 'S' or 'N', then expect another packet */
	STARTUP_KIND_GSSENC,      /* GSSENCRequest: answer 'N', then expect another packet */
	STARTUP_KIND_CANCEL,      /* CancelRequest: cancel_pid / cancel_key */
};

enum startup_rc {
	STARTUP_OK = 0,
	STARTUP_ERR_SHORT = -1,        /* under 8 bytes */
	STARTUP_ERR_TOO_LONG = -2,     /* over STARTUP_MAX_PACKET */
	STARTUP_ERR_LENGTH = -3,       /* length word disagrees with the packet or its kind */
	STARTUP_ERR_PROTOCOL = -4,     /* unsupported protocol version (see major / minor) */
	STARTUP_ERR_NO_USER = -5,      /* no "user" or an empty one */
	STARTUP_ERR_UNTERMINATED = -6, /* a string, or the list, runs off the end of the packet */
	STARTUP_ERR_ODD_PAIRS = -7,    /* a key without a value */
	STARTUP_ERR_TRAILING = -8,     /* bytes after the list's terminating NUL */
	STARTUP_ERR_REPLICATION = -9,  /* replication connections are not supported */
	STARTUP_ERR_NOMEM = -10,
};

struct startup_param {
	const char *key;
	const char *value;
};

/* A parsed startup packet. Strings point into memory owned by the struct (startup_deinit). */
struct startup {
	enum startup_kind kind;
	uint16_t major, minor;         /* requested protocol version, also set on STARTUP_ERR_PROTOCOL */
	uint32_t cancel_pid, cancel_key;
	const char *user;
	const char *database;          /* defaults to user, as PostgreSQL does */
	const char *options;           /* NULL when absent */
	const char *application_name;  /* NULL when absent */
	struct startup_param *params;  /* every other pair, in the order sent */
	size_t n_params;
	/* "_pq_." protocol options: none are supported, so a 3.x client that sends any (or a minor
	 * version above 0) must get NegotiateProtocolVersion listing them. */
	struct startup_param *proto_opts;
	size_t n_proto_opts;
	void *mem;
};

/* Parses one complete packet (length word included, as framed by pgproto_frame_read with
 * startup = true). On error the struct holds nothing to free but may say major / minor. */
int startup_parse(const uint8_t *pkt, size_t len, struct startup *s) __attribute__((warn_unused_result));
void startup_deinit(struct startup *s);

/* The value of any key the client sent (the named fields included), or NULL. */
const char *startup_get(const struct startup *s, const char *key);

/* A message fit for the client (no packet contents in it) and the SQLSTATE to send it with. */
const char *startup_strerror(int rc);
const char *startup_sqlstate(int rc);

#endif
