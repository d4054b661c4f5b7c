/* tetherd's entry point: command-line options, finding and checking the config, and handing a
 * ready core to the lifecycle loop. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "core_conf.h"
#include "core_internal.h"
#include "loopclock.h"
#include "version.h"

static const struct log_src main_log = { "core", 0 };

static void main_usage(FILE *out)
{
	fprintf(out,
		"Usage: tetherd [options]\n"
		"\n"
		"tether: a sidecar that pools PostgreSQL connections, caches reads in Redis, injects Google\n"
		"credentials and forwards Pub/Sub and Cloud Storage calls.\n"
		"\n"
		"Options:\n"
		"  -c, --config FILE          config file (default: ./tether.yaml, then\n"
		"                             /etc/tether/tether.yaml, else a built-in default that only\n"
		"                             serves the admin endpoint on 127.0.0.1:9090)\n"
		"      --check-config         validate the config, print it with secrets masked and exit 0,\n"
		"                             or print every error and exit 2\n"
		"      --print-reference-config\n"
		"                             print the reference config (every key, commented) and exit\n"
		"      --log-level LEVEL      error, warn, info or debug (overrides log.level)\n"
		"      --log-format FORMAT    text or json (overrides log.format)\n"
		"  -h, --help                 this text\n"
		"  -V, --version              print the version and exit\n"
		"\n"
		"Signals: SIGHUP reloads the config; SIGTERM/SIGINT drain and exit.\n");
}

/* The config file to use: the one given, else the first of the default places that exists. */
static const char *main_find_config(const char *given)
{
	if (given)
		return given;
	static const char *const candidates[] = { "./tether.yaml", "/etc/tether/tether.yaml" };
	for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++)
		if (access(candidates[i], F_OK) == 0)
			return candidates[i];
	return NULL;
}

static void main_raise_nofile(const struct daemon_conf *dc)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	rlim_t want = dc->max_open_files > 0 ? (rlim_t)dc->max_open_files : rl.rlim_max;
	if (want > rl.rlim_max)
		want = rl.rlim_max;
	if (want > rl.rlim_cur) {
		rlim_t old = rl.rlim_cur;
		rl.rlim_cur = want;
		if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
			log_debug(&main_log, "raised open file limit from %llu to %llu", (unsigned long long)old,
				  (unsigned long long)want);
		else
			log_warn(&main_log, "cannot raise open file limit to %llu: %s", (unsigned long long)want,
				 strerror(errno));
	}
}

int main(int argc, char **argv)
{
	enum { OPT_CHECK = 256, OPT_REF, OPT_LEVEL, OPT_FORMAT };
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, OPT_CHECK },
		{ "print-reference-config", no_argument, NULL, OPT_REF },
		{ "log-level", required_argument, NULL, OPT_LEVEL },
		{ "log-format", required_argument, NULL, OPT_FORMAT },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config_arg = NULL;
	bool check = false, reference = false, level_forced = false, format_forced = false;
	enum log_level level = LOG_LEVEL_INFO;
	enum log_format format = LOG_FORMAT_TEXT;
	int ch;
	while ((ch = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			config_arg = optarg;
			break;
		case OPT_CHECK:
			check = true;
			break;
		case OPT_REF:
			reference = true;
			break;
		case OPT_LEVEL:
			if (log_level_parse(optarg, &level) != 0) {
				fprintf(stderr, "tetherd: --log-level must be error, warn, info or debug\n");
				return 2;
			}
			level_forced = true;
			break;
		case OPT_FORMAT:
			if (log_format_parse(optarg, &format) != 0) {
				fprintf(stderr, "tetherd: --log-format must be text or json\n");
				return 2;
			}
			format_forced = true;
			break;
		case 'h':
			main_usage(stdout);
			return 0;
		case 'V':
			printf("tetherd %s\n", TETHER_VERSION);
			return 0;
		default:
			main_usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "tetherd: unexpected argument \"%s\"\n", argv[optind]);
		main_usage(stderr);
		return 2;
	}
	log_setup(level, format, stderr);

	const struct conf_table *const *tables;
	size_t nt = core_conf_tables(&tables);
	if (reference) {
		conf_write_reference(tables, nt, stdout);
		return 0;
	}

	const char *path = main_find_config(config_arg);
	struct conf_errors errs;
	conf_errors_init(&errs);
	struct conf *conf = path ? conf_load_file(path, tables, nt, &errs)
				 : conf_load_string("<embedded default>", core_conf_embedded_default, tables, nt, &errs);
	if (!conf) {
		conf_errors_print(&errs, stderr);
		fprintf(stderr, "tetherd: %zu error%s in %s\n", errs.n, errs.n == 1 ? "" : "s",
			path ? path : "the embedded default");
		conf_errors_deinit(&errs);
		return 2;
	}
	conf_errors_deinit(&errs);
	if (check) {
		printf("# effective config from %s (secrets masked)\n", path ? path : "the embedded default");
		conf_dump_yaml(conf, stdout);
		conf_destroy(conf);
		return 0;
	}
	if (!path)
		log_info(&main_log, "no config file given and none found at ./tether.yaml or "
				    "/etc/tether/tether.yaml; running on the embedded default (admin endpoint on "
				    "127.0.0.1:9090 and nothing else)");

	struct core c = {
		.conf = conf,
		.conf_boot = conf,
		.conf_path = path ? realpath(path, NULL) : NULL,
		.log_level_forced = level_forced,
		.log_format_forced = format_forced,
		.started_at = time(NULL),
	};
	if (path && !c.conf_path)
		c.conf_path = strdup(path);
	main_raise_nofile(conf_section(conf, "daemon"));
	listener_inherit_systemd();
	/* The epoll changelist folds an event armed and disarmed in one loop turn into nothing. */
	struct event_config *ecfg = event_config_new();
	if (ecfg)
		event_config_set_flag(ecfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	c.base = ecfg ? event_base_new_with_config(ecfg) : NULL;
	if (ecfg)
		event_config_free(ecfg);
	if (!c.base)
		c.base = event_base_new();
	c.metrics = metrics_create();
	if (!c.base || !c.metrics) {
		log_error(&main_log, "cannot create the event loop");
		return 1;
	}
	loopclock_bind(c.base);
	int rc = daemon_run(&c);
	loopclock_bind(NULL);
	if (c.conf != c.conf_boot)
		conf_destroy(c.conf);
	conf_destroy(c.conf_boot);
	metrics_destroy(c.metrics);
	event_base_free(c.base);
	free(c.conf_path);
	log_info(&main_log, "exited");
	return rc;
}
