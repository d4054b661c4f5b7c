/* Logging: formats one line per event as text or as a Cloud Logging JSON line and writes it with a
 * single write() so lines from one process never interleave. */
#include "log.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

static enum log_level log_level_cur = LOG_LEVEL_INFO;
static enum log_format log_format_cur = LOG_FORMAT_TEXT;
static FILE *log_out;

static const char *const log_level_names[] = { "error", "warn", "info", "debug" };
/* Cloud Logging severities, https://cloud.google.com/logging/docs/reference/v2/rest/v2/LogEntry */
static const char *const log_severity[] = { "ERROR", "WARNING", "INFO", "DEBUG" };

void log_setup(enum log_level level, enum log_format format, FILE *out)
{
	log_level_cur = level;
	log_format_cur = format;
	log_out = out;
}

void log_set_level(enum log_level level)
{
	log_level_cur = level;
}

enum log_level log_get_level(void)
{
	return log_level_cur;
}

const char *log_level_name(enum log_level level)
{
	return (unsigned)level < 4 ? log_level_names[level] : "?";
}

int log_level_parse(const char *s, enum log_level *out)
{
	for (int i = 0; i < 4; i++) {
		if (strcasecmp(s, log_level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	if (strcasecmp(s, "warning") == 0) {
		*out = LOG_LEVEL_WARN;
		return 0;
	}
	return -1;
}

int log_format_parse(const char *s, enum log_format *out)
{
	if (strcmp(s, "text") == 0)
		*out = LOG_FORMAT_TEXT;
	else if (strcmp(s, "json") == 0)
		*out = LOG_FORMAT_JSON;
	else
		return -1;
	return 0;
}

static void log_emit(const char *line, size_t len)
{
	FILE *f = log_out ? log_out : stderr;
	int fd = fileno(f);
	while (len > 0) {
		ssize_t n = write(fd, line, len);
		if (n <= 0)
			return; /* nowhere left to report it */
		line += n;
		len -= (size_t)n;
	}
}

static void log_vwrite(enum log_level level, const struct log_src *src, const char *const *kv,
		       const char *fmt, va_list ap)
{
	char msg[4096];
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0)
		return;

	struct timeval tv;
	gettimeofday(&tv, NULL);
	struct tm tm;
	gmtime_r(&tv.tv_sec, &tm);
	char ts[40];
	size_t tl = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + tl, sizeof(ts) - tl, ".%06ldZ", (long)tv.tv_usec);

	const char *component = src && src->component ? src->component : "core";
	if (log_format_cur == LOG_FORMAT_JSON) {
		json_t *o = json_object();
		json_object_set_new(o, "severity", json_string(log_severity[level]));
		json_object_set_new(o, "time", json_string(ts));
		json_object_set_new(o, "message", json_string(msg));
		json_object_set_new(o, "component", json_string(component));
		if (src && src->conn)
			json_object_set_new(o, "conn", json_integer((json_int_t)src->conn));
		for (const char *const *p = kv; p && p[0] && p[1]; p += 2)
			json_object_set_new(o, p[0], json_string(p[1]));
		char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
		json_decref(o);
		if (!s)
			return;
		size_t sl = strlen(s);
		char *line = malloc(sl + 2);
		if (line) {
			memcpy(line, s, sl);
			line[sl] = '\n';
			log_emit(line, sl + 1);
			free(line);
		}
		free(s);
		return;
	}

	char line[5120];
	size_t off;
	if (src && src->conn)
		off = (size_t)snprintf(line, sizeof(line), "%s %-5s [%s#%llu] %s", ts, log_severity[level],
				       component, (unsigned long long)src->conn, msg);
	else
		off = (size_t)snprintf(line, sizeof(line), "%s %-5s [%s] %s", ts, log_severity[level],
				       component, msg);
	for (const char *const *p = kv; p && p[0] && p[1] && off < sizeof(line); p += 2)
		off += (size_t)snprintf(line + off, sizeof(line) - off, " %s=%s", p[0], p[1]);
	if (off >= sizeof(line) - 1)
		off = sizeof(line) - 2;
	line[off++] = '\n';
	log_emit(line, off);
}

void log_write(enum log_level level, const struct log_src *src, const char *fmt, ...)
{
	if (level > log_level_cur)
		return;
	va_list ap;
	va_start(ap, fmt);
	log_vwrite(level, src, NULL, fmt, ap);
	va_end(ap);
}

void log_write_kv(enum log_level level, const struct log_src *src, const char *const *kv, const char *fmt, ...)
{
	if (level > log_level_cur)
		return;
	va_list ap;
	va_start(ap, fmt);
	log_vwrite(level, src, kv, fmt, ap);
	va_end(ap);
}
