/* rel-util.c — shared by the reliability tests; see rel-util.h. */
#include "config.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include "rel-util.h"
#include "sc-test-util.h"

RelDaemon *
rel_daemon_start (const char *config, const char *log_path, const char *const *env)
{
	g_autoptr(GSubprocessLauncher) launcher =
	    g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDERR_MERGE);
	g_autoptr(GError) error = NULL;
	RelDaemon *daemon = g_new0 (RelDaemon, 1);
	int fd;

	g_subprocess_launcher_setenv (launcher, "STAGECOACH_CONFIG", config, TRUE);
	g_subprocess_launcher_setenv (launcher, "LC_ALL", "C.UTF-8", TRUE);
	g_subprocess_launcher_set_child_setup (launcher, sc_test_die_with_parent, GINT_TO_POINTER (getpid ()), NULL);
	for (guint i = 0; env != NULL && env[i] != NULL; i++) {
		g_auto(GStrv) pair = g_strsplit (env[i], "=", 2);
		g_subprocess_launcher_setenv (launcher, pair[0], pair[1] != NULL ? pair[1] : "", TRUE);
	}
	/* appended: a restarted daemon keeps the earlier runs' logs */
	fd = open (log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	g_assert_cmpint (fd, >=, 0);
	g_subprocess_launcher_take_stdout_fd (launcher, fd);
	daemon->log_path = g_strdup (log_path);
	daemon->process = g_subprocess_launcher_spawn (launcher, &error, sc_test_binary (), "run", NULL);
	g_assert_no_error (error);
	return daemon;
}

gboolean
rel_daemon_alive (RelDaemon *daemon)
{
	return daemon->process != NULL && g_subprocess_get_identifier (daemon->process) != NULL;
}

void
rel_daemon_kill (RelDaemon *daemon)
{
	g_subprocess_send_signal (daemon->process, SIGKILL);
	g_subprocess_wait (daemon->process, NULL, NULL);
}

int
rel_daemon_stop (RelDaemon *daemon, guint timeout_ms)
{
	gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

	g_subprocess_send_signal (daemon->process, SIGTERM);
	while (rel_daemon_alive (daemon)) {
		if (g_get_monotonic_time () >= deadline) {
			rel_daemon_kill (daemon);
			return -1;
		}
		g_usleep (20 * 1000);
	}
	g_subprocess_wait (daemon->process, NULL, NULL);
	if (g_subprocess_get_if_signaled (daemon->process))
		return 128 + g_subprocess_get_term_sig (daemon->process);
	return g_subprocess_get_exit_status (daemon->process);
}

void
rel_daemon_free (RelDaemon *daemon)
{
	if (daemon == NULL)
		return;
	if (rel_daemon_alive (daemon))
		rel_daemon_kill (daemon);
	g_clear_object (&daemon->process);
	g_free (daemon->log_path);
	g_free (daemon);
}

int
rel_inject (const char *config,
	    const char *list,
	    const char *message,
	    gsize length,
	    const char *const *recipients,
	    char **out_queue_id,
	    char **out_stderr)
{
	g_autoptr(GSubprocessLauncher) launcher =
	    g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE |
				       G_SUBPROCESS_FLAGS_STDERR_PIPE);
	g_autoptr(GPtrArray) argv = g_ptr_array_new ();
	g_autoptr(GSubprocess) process = NULL;
	g_autoptr(GBytes) input = g_bytes_new (message, length);
	g_autoptr(GBytes) out = NULL;
	g_autoptr(GBytes) err = NULL;
	g_autoptr(GError) error = NULL;

	g_ptr_array_add (argv, (gpointer) sc_test_binary ());
	g_ptr_array_add (argv, "inject");
	g_ptr_array_add (argv, "--list");
	g_ptr_array_add (argv, (gpointer) list);
	for (guint i = 0; recipients[i] != NULL; i++)
		g_ptr_array_add (argv, (gpointer) recipients[i]);
	g_ptr_array_add (argv, NULL);
	g_subprocess_launcher_setenv (launcher, "STAGECOACH_CONFIG", config, TRUE);
	g_subprocess_launcher_setenv (launcher, "LC_ALL", "C.UTF-8", TRUE);
	process = g_subprocess_launcher_spawnv (launcher, (const char *const *) argv->pdata, &error);
	g_assert_no_error (error);
	g_subprocess_communicate (process, input, NULL, &out, &err, &error);
	g_assert_no_error (error);
	if (out_queue_id != NULL)
		/* an empty GBytes may have NULL data: g_strndup would return NULL */
		*out_queue_id = g_strstrip (g_bytes_get_size (out) > 0
						? g_strndup (g_bytes_get_data (out, NULL), g_bytes_get_size (out))
						: g_strdup (""));
	if (out_stderr != NULL)
		*out_stderr = g_strndup (g_bytes_get_data (err, NULL), g_bytes_get_size (err));
	if (g_subprocess_get_if_signaled (process))
		return 128 + g_subprocess_get_term_sig (process);
	return g_subprocess_get_exit_status (process);
}

const char *
rel_member (JsonObject *object, const char *name)
{
	JsonNode *node = json_object_get_member (object, name);

	if (node == NULL || json_node_is_null (node) || json_node_get_value_type (node) != G_TYPE_STRING)
		return NULL;
	return json_node_get_string (node);
}

JsonObject *
rel_wait_state (const char *config, const char *queue_id, const char *states, guint timeout_ms)
{
	gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
	g_auto(GStrv) wanted = g_strsplit (states, "|", -1);

	for (;;) {
		JsonObject *shown = sc_test_show (config, queue_id);

		if (g_strv_contains ((const char *const *) wanted, rel_member (shown, "state")) ||
		    g_get_monotonic_time () >= deadline)
			return shown;
		json_object_unref (shown);
		g_usleep (100 * 1000);
	}
}

guint
rel_count_recipient_status (JsonObject *shown, const char *status)
{
	JsonArray *recipients = json_object_get_array_member (shown, "recipients");
	guint count = 0;

	for (guint i = 0; i < json_array_get_length (recipients); i++) {
		if (g_strcmp0 (rel_member (json_array_get_object_element (recipients, i), "status"), status) == 0)
			count++;
	}
	return count;
}

guint
rel_count_attempts (JsonObject *shown, const char *outcome)
{
	JsonArray *attempts = json_object_get_array_member (shown, "attempts");
	guint count = 0;

	for (guint i = 0; i < json_array_get_length (attempts); i++) {
		if (outcome == NULL ||
		    g_strcmp0 (rel_member (json_array_get_object_element (attempts, i), "outcome"), outcome) == 0)
			count++;
	}
	return count;
}

char *
rel_message_id (const char *data, gsize length)
{
	const char *cursor = data;
	const char *end = data + length;

	while (cursor < end) {
		const char *newline = memchr (cursor, '\n', end - cursor);
		gsize line_length = (newline != NULL ? newline : end) - cursor;

		if (line_length == 0 || (line_length == 1 && cursor[0] == '\r'))
			break; /* end of the header block */
		if (line_length > 11 && g_ascii_strncasecmp (cursor, "Message-ID:", 11) == 0) {
			const char *open = memchr (cursor, '<', line_length);
			const char *close = open != NULL ? memchr (open, '>', cursor + line_length - open) : NULL;

			if (open != NULL && close != NULL)
				return g_strndup (open, close - open + 1);
		}
		if (newline == NULL)
			break;
		cursor = newline + 1;
	}
	return NULL;
}

GHashTable *
rel_sink_pair_counts (ScTestSink *sink)
{
	g_autoptr(GPtrArray) dumps = sc_test_sink_get_messages (sink);
	GHashTable *counts = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

	for (guint i = 0; i < dumps->len; i++) {
		ScTestSinkMessage *dump = dumps->pdata[i];
		gsize size = 0;
		const char *data = g_bytes_get_data (dump->data, &size);
		g_autofree char *message_id = NULL;

		if (!dump->complete)
			continue; /* an aborted transaction: nothing was delivered */
		message_id = rel_message_id (data, size);
		for (guint r = 0; r < dump->recipients->len; r++) {
			g_autofree char *key = g_strdup_printf ("%s %s", message_id != NULL ? message_id : "-",
								(const char *) dump->recipients->pdata[r]);
			guint copies = GPOINTER_TO_UINT (g_hash_table_lookup (counts, key));

			g_hash_table_insert (counts, g_steal_pointer (&key), GUINT_TO_POINTER (copies + 1));
		}
	}
	return counts;
}

char *
rel_mailer_section (const char *name, const char *url, const char *extra)
{
	return g_strdup_printf ("[mailer:%s]\nurl=%s\nstarttls=off\ntimeout=5s\n%s", name, url,
				extra != NULL ? extra : "");
}
