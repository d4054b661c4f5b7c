/* PostgreSQL v3 wire-protocol framing, message builders and the few message parsers the relay
 * needs; pure code over byte buffers and evbuffers, no I/O. */
#ifndef TETHER_PGPROTO_H
#define TETHER_PGPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>

#define PGPROTO_WUR __attribute__((warn_unused_result))

/* Protocol codes carried in the code word of startup-phase packets. */
#define PGPROTO_VERSION(major, minor) (((uint32_t)(major) << 16) | (uint32_t)(minor))
#define PGPROTO_V3 PGPROTO_VERSION(3, 0)      /* 196608 */
#define PGPROTO_CANCEL_CODE PGPROTO_VERSION(1234, 5678) /* 80877102 */
#define PGPROTO_SSL_CODE PGPROTO_VERSION(1234, 5679)    /* 80877103 */
#define PGPROTO_GSSENC_CODE PGPROTO_VERSION(1234, 5680) /* 80877104 */

/* Authentication request codes (the Int32 after 'R'). */
enum pgproto_auth_code {
	PGPROTO_AUTH_OK = 0,
	PGPROTO_AUTH_KERBEROS_V5 = 2,
	PGPROTO_AUTH_CLEARTEXT = 3,
	PGPROTO_AUTH_MD5 = 5,
	PGPROTO_AUTH_GSS = 7,
	PGPROTO_AUTH_GSS_CONTINUE = 8,
	PGPROTO_AUTH_SSPI = 9,
	PGPROTO_AUTH_SASL = 10,
	PGPROTO_AUTH_SASL_CONTINUE = 11,
	PGPROTO_AUTH_SASL_FINAL = 12,
};

/* Results of the frame reader and the parsers. Negative values are protocol violations: the
 * connection that sent them cannot be trusted to stay in sync and should be closed. */
enum pgproto_rc {
	PGPROTO_OK = 0,
	PGPROTO_INCOMPLETE = 1,      /* need more bytes; frame->total says how many once known */
	PGPROTO_ERR_SHORT = -1,      /* length word below the minimum (4, or 8 for startup packets) */
	PGPROTO_ERR_LONG = -2,       /* length word above max_packet_size */
	PGPROTO_ERR_MALFORMED = -3,  /* truncated field, missing NUL, bad count, trailing bytes */
	PGPROTO_ERR_TYPE = -4,       /* not the message type this parser reads */
	PGPROTO_ERR_NOMEM = -5,
};

const char *pgproto_strerror(int rc);

/* ---- Framing ------------------------------------------------------------------------------ */

/* A message header. Regular messages are Byte1 type + Int32 length; startup-phase packets
 * (StartupMessage, SSLRequest, GSSENCRequest, CancelRequest) have no type byte. The length word
 * counts itself but not the type byte. */
struct pgproto_frame {
	uint8_t type;   /* 0 for startup-phase packets */
	uint32_t len;   /* the length word */
	size_t hdr;     /* header bytes: 5, or 4 for startup packets */
	size_t total;   /* bytes the whole message occupies (hdr + len - 4); 0 until known */
};

/* Reads the header at `data`. Returns PGPROTO_OK when all `total` bytes are present,
 * PGPROTO_INCOMPLETE when more are needed (total is set once the header is complete),
 * or PGPROTO_ERR_SHORT / PGPROTO_ERR_LONG. max_packet_size bounds the length word. */
int pgproto_frame_read(const uint8_t *data, size_t len, bool startup, uint32_t max_packet_size,
		       struct pgproto_frame *f) PGPROTO_WUR;
/* The same over the front of an evbuffer (copies out at most the header, never drains). */
int pgproto_frame_peek(struct evbuffer *in, bool startup, uint32_t max_packet_size,
		       struct pgproto_frame *f) PGPROTO_WUR;

/* ---- Builders: each appends one whole message to `out` or nothing; 0 or -1 (no memory, or a
 * message that would exceed the protocol's 1 GiB - 1 length) ---------------------------------- */

/* ErrorResponse ('E') or NoticeResponse ('N'): fields S and V (both `severity`, which must be a
 * non-localized keyword such as "ERROR" or "FATAL"), C, M, and D / H when not NULL. */
int pgproto_put_notice(struct evbuffer *out, uint8_t type, const char *severity, const char *sqlstate,
		       const char *message, const char *detail, const char *hint) PGPROTO_WUR;
int pgproto_put_error(struct evbuffer *out, const char *severity, const char *sqlstate,
		      const char *message) PGPROTO_WUR;

int pgproto_put_auth_ok(struct evbuffer *out) PGPROTO_WUR;
int pgproto_put_auth_cleartext(struct evbuffer *out) PGPROTO_WUR;
int pgproto_put_auth_md5(struct evbuffer *out, const uint8_t salt[4]) PGPROTO_WUR;
/* AuthenticationSASL with a NULL-terminated list of mechanism names. */
int pgproto_put_auth_sasl(struct evbuffer *out, const char *const *mechs) PGPROTO_WUR;
int pgproto_put_auth_sasl_continue(struct evbuffer *out, const void *data, size_t len) PGPROTO_WUR;
int pgproto_put_auth_sasl_final(struct evbuffer *out, const void *data, size_t len) PGPROTO_WUR;

int pgproto_put_parameter_status(struct evbuffer *out, const char *name, const char *value) PGPROTO_WUR;
int pgproto_put_backend_key_data(struct evbuffer *out, uint32_t pid, uint32_t key) PGPROTO_WUR;
int pgproto_put_ready_for_query(struct evbuffer *out, uint8_t status) PGPROTO_WUR;
int pgproto_put_command_complete(struct evbuffer *out, const char *tag) PGPROTO_WUR;
/* NegotiateProtocolVersion ('v'): newest 3.x minor version we speak and the unrecognized
 * protocol options (names starting with "_pq_.") the client asked for. */
int pgproto_put_negotiate_protocol_version(struct evbuffer *out, uint16_t minor, const char *const *options,
					   size_t n_options) PGPROTO_WUR;
/* The single byte answering SSLRequest / GSSENCRequest: 'S'/'G' to accept, 'N' to refuse. */
int pgproto_put_byte(struct evbuffer *out, uint8_t b) PGPROTO_WUR;
/* A message with no body: Sync 'S', Flush 'H', Terminate 'X', ParseComplete '1',
 * BindComplete '2', CloseComplete '3', NoData 'n', EmptyQueryResponse 'I'. */
int pgproto_put_empty(struct evbuffer *out, uint8_t type) PGPROTO_WUR;
int pgproto_put_sync(struct evbuffer *out) PGPROTO_WUR;
int pgproto_put_terminate(struct evbuffer *out) PGPROTO_WUR;

int pgproto_put_password(struct evbuffer *out, const char *password) PGPROTO_WUR;
/* SASLInitialResponse; data == NULL sends the "no initial response" length -1. */
int pgproto_put_sasl_initial_response(struct evbuffer *out, const char *mech, const void *data,
				      size_t len) PGPROTO_WUR;
int pgproto_put_sasl_response(struct evbuffer *out, const void *data, size_t len) PGPROTO_WUR;
/* StartupMessage, protocol 3.0, with a NULL-terminated list of key, value, key, value, ... */
int pgproto_put_startup(struct evbuffer *out, const char *const *kv) PGPROTO_WUR;
int pgproto_put_cancel_request(struct evbuffer *out, uint32_t pid, uint32_t key) PGPROTO_WUR;
int pgproto_put_query(struct evbuffer *out, const char *sql) PGPROTO_WUR;
int pgproto_put_parse(struct evbuffer *out, const char *name, const char *query, const uint32_t *oids,
		      uint16_t n_oids) PGPROTO_WUR;
/* Bind with text or binary parameters: values[i] == NULL is SQL NULL. formats and result_formats
 * may be NULL when their counts are 0. */
int pgproto_put_bind(struct evbuffer *out, const char *portal, const char *stmt, uint16_t n_formats,
		     const int16_t *formats, uint16_t n_params, const uint8_t *const *values,
		     const uint32_t *lengths, uint16_t n_result_formats, const int16_t *result_formats) PGPROTO_WUR;
/* kind is 'S' (prepared statement) or 'P' (portal). */
int pgproto_put_describe(struct evbuffer *out, uint8_t kind, const char *name) PGPROTO_WUR;
int pgproto_put_close(struct evbuffer *out, uint8_t kind, const char *name) PGPROTO_WUR;
int pgproto_put_execute(struct evbuffer *out, const char *portal, uint32_t max_rows) PGPROTO_WUR;

/* ---- Parsers: each takes one whole message (type byte and length word included, as framed by
 * pgproto_frame_read) and validates every length, count and NUL terminator. String results point
 * into `msg` unless said otherwise and live as long as it does. ------------------------------- */

/* ErrorResponse / NoticeResponse. The strings point into a private copy owned by the struct
 * (release with pgproto_notice_deinit); absent fields are NULL. */
struct pgproto_notice {
	char *buf;
	size_t buf_len;
	const char *severity;    /* S (localized) */
	const char *severity_nl; /* V (non-localized; servers >= 9.6) */
	const char *sqlstate;    /* C */
	const char *message;     /* M */
	const char *detail;      /* D */
	const char *hint;        /* H */
};
/* type is 'E' or 'N'. */
int pgproto_parse_notice(const uint8_t *msg, size_t len, uint8_t type, struct pgproto_notice *n) PGPROTO_WUR;
/* Any field by its code byte, or NULL. */
const char *pgproto_notice_field(const struct pgproto_notice *n, uint8_t code);
void pgproto_notice_deinit(struct pgproto_notice *n);

int pgproto_parse_parameter_status(const uint8_t *msg, size_t len, const char **name,
				   const char **value) PGPROTO_WUR;
int pgproto_parse_backend_key_data(const uint8_t *msg, size_t len, uint32_t *pid, uint32_t *key) PGPROTO_WUR;
/* status is 'I' (idle), 'T' (in a transaction) or 'E' (in a failed transaction). */
int pgproto_parse_ready_for_query(const uint8_t *msg, size_t len, uint8_t *status) PGPROTO_WUR;

/* Authentication*: the code and the bytes after it, checked for the codes whose layout is fixed
 * (OK/cleartext: empty, MD5: 4-byte salt, SASL: NUL-terminated name list ending in an empty
 * name). Unknown codes are returned as they are for the caller to refuse. */
struct pgproto_auth {
	uint32_t code;
	const uint8_t *data;
	size_t data_len;
};
int pgproto_parse_auth(const uint8_t *msg, size_t len, struct pgproto_auth *a) PGPROTO_WUR;
/* Whether an AuthenticationSASL request offers `mech`. */
bool pgproto_auth_sasl_has(const struct pgproto_auth *a, const char *mech);

/* PasswordMessage / SASLInitialResponse / SASLResponse all arrive as 'p'; which one is meant
 * depends on the authentication exchange in progress. */
int pgproto_parse_password(const uint8_t *msg, size_t len, const char **password) PGPROTO_WUR;
/* data is NULL when the client sent length -1 (no initial response). */
int pgproto_parse_sasl_initial_response(const uint8_t *msg, size_t len, const char **mech,
					const uint8_t **data, size_t *data_len) PGPROTO_WUR;
int pgproto_parse_sasl_response(const uint8_t *msg, size_t len, const uint8_t **data,
				size_t *data_len) PGPROTO_WUR;

struct pgproto_parse {
	const char *name;      /* "" is the unnamed statement */
	size_t name_off;       /* offset of name in the message */
	const char *query;
	uint16_t n_oids;
	const uint8_t *oids;   /* n_oids big-endian Int32s; read with pgproto_parse_oid */
};
int pgproto_parse_parse(const uint8_t *msg, size_t len, struct pgproto_parse *p) PGPROTO_WUR;
uint32_t pgproto_parse_oid(const struct pgproto_parse *p, uint16_t i);

/* Bind: names and where the statement name sits, so it can be rewritten without re-encoding the
 * parameters. The rest of the message is validated but not decoded. */
struct pgproto_bind {
	const char *portal;
	const char *stmt;
	size_t stmt_off; /* offset of the statement name in the message */
	size_t stmt_len; /* its length without the NUL */
	uint16_t n_params;
};
int pgproto_parse_bind(const uint8_t *msg, size_t len, struct pgproto_bind *b) PGPROTO_WUR;

/* Close ('C', frontend) or Describe ('D', frontend): kind 'S' or 'P' and the name. */
struct pgproto_target {
	uint8_t kind;
	const char *name;
	size_t name_off;
};
int pgproto_parse_close(const uint8_t *msg, size_t len, struct pgproto_target *t) PGPROTO_WUR;
int pgproto_parse_describe(const uint8_t *msg, size_t len, struct pgproto_target *t) PGPROTO_WUR;
int pgproto_parse_execute(const uint8_t *msg, size_t len, const char **portal, uint32_t *max_rows) PGPROTO_WUR;
int pgproto_parse_query(const uint8_t *msg, size_t len, const char **sql) PGPROTO_WUR;
/* CommandComplete ('C', backend). */
int pgproto_parse_command_complete(const uint8_t *msg, size_t len, const char **tag) PGPROTO_WUR;

/* Appends to `out` the frontend Parse, Bind, Describe or Close message `msg` with its statement
 * (or, for Describe/Close 'P', portal) name replaced by `name`; every other byte is copied and
 * the length word fixed up. Returns PGPROTO_OK, a parse error, or PGPROTO_ERR_NOMEM. */
int pgproto_rewrite_name(struct evbuffer *out, const uint8_t *msg, size_t len, const char *name) PGPROTO_WUR;

#endif
