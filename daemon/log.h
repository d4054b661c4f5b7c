/* Logging: one line per event, text for terminals or JSON lines in the shape Cloud Logging reads
 * from stdout; every line names the component (core part or plugin) and, when there is one, the
 * connection it speaks of. */
#ifndef TETHER_LOG_H
#define TETHER_LOG_H

#include <stdint.h>
#include <stdio.h>

enum log_level { LOG_LEVEL_ERROR = 0, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };
enum log_format { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON };

/* Where a line comes from: a component name ("core", "http", "pg", ...) and an optional
 * connection id (0 = none). Plugins keep one of these in their state and pass it to every call. */
struct log_src {
	const char *component;
	uint64_t conn;
};

void log_setup(enum log_level level, enum log_format format, FILE *out);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
int log_level_parse(const char *s, enum log_level *out);
int log_format_parse(const char *s, enum log_format *out);
const char *log_level_name(enum log_level level);

/* Writes one line. `src` may be NULL (core). Extra structured fields may follow the message as
 * a NULL-terminated list of key, value string pairs with log_writef_kv. */
void log_write(enum log_level level, const struct log_src *src, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void log_write_kv(enum log_level level, const struct log_src *src, const char *const *kv,
		  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define log_enabled(lvl) ((lvl) <= log_get_level())
#define log_error(src, ...) log_write(LOG_LEVEL_ERROR, (src), __VA_ARGS__)
#define log_warn(src, ...) log_write(LOG_LEVEL_WARN, (src), __VA_ARGS__)
#define log_info(src, ...) log_write(LOG_LEVEL_INFO, (src), __VA_ARGS__)
#define log_debug(src, ...)                                                                        \
	do {                                                                                       \
		if (log_enabled(LOG_LEVEL_DEBUG))                                                  \
			log_write(LOG_LEVEL_DEBUG, (src), __VA_ARGS__);                            \
	} while (0)

#endif
