/* sc-exec.c — the exec:NAME stage: runs an operator's program on each message.
 *
 * The [handler:NAME] section gives the command, whether its output replaces
 * the message, and a timeout.  The program gets the current message on
 * stdin and STAGECOACH_QUEUE_ID, STAGECOACH_LIST_ID, STAGECOACH_SENDER and
 * STAGECOACH_STAGE in its environment.  Its exit status decides, as the
 * table in Postfix's sys_exits.c does for mail programs:
 *
 *	0		ok; with replace = true, stdout is the new message
 *	75 (EX_TEMPFAIL)	transient: retried later
 *	anything else	permanent, and so is death by a signal
 *
 * and the first lines of its stderr become the recorded error.  A program
 * that cannot be started, that outlives its timeout, or that is running at
 * shutdown is killed with its whole process group and the failure is
 * transient: an operator can fix each of those.
 *
 * stdin, stdout and stderr are served together on a private main context
 * of the worker thread, so a 50 MB message cannot deadlock against a
 * program that writes before it has read everything; stdout is kept up to
 * max-message-size and stderr up to 4 KiB, the rest read and dropped.
 *
 * Must never: block without a deadline, let a SIGPIPE from a program that
 * stops reading kill the daemon, or take an empty stdout for an empty
 * message.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <sysexits.h>
#include <gio/gunixoutputstream.h>
#include <glib-unix.h>
#include <unistd.h>

#include "sc-duration.h"
#include "sc-handler.h"
#include "sc-i18n.h"
#include "sc-message-headers.h"

#define SC_EXEC_STDERR_KEEP 4096
#define SC_EXEC_STDERR_LINES 10
#define SC_EXEC_READ_CHUNK 65536

typedef struct _ScExecRun ScExecRun;

typedef struct {
	ScExecRun *run;
	GInputStream *stream; /* (unowned) the subprocess's pipe */
	GByteArray *data;     /* (owned) what was kept */
	gsize keep;           /* at most this many bytes are kept; the rest is drained */
	gboolean truncated;   /* more came than was kept */
	guint8 buffer[SC_EXEC_READ_CHUNK];
} ScExecReader;

/* One run of the program.  Touched only by the worker thread that runs
 * the stage, from its private main context. */
struct _ScExecRun {
	GSubprocess *subprocess;      /* (owned) */
	GCancellable *io_cancellable; /* (owned) stops the pipe I/O after a kill */
	pid_t process_group; /* the program's pid, which setpgid() made a group id; 0 if unknown */
	guint pending; /* stdin, stdout, stderr and the exit: 0 when all are done */
	gboolean exited;
	gboolean timed_out;
	gboolean cancelled;
	GError *io_error; /* (owned) (nullable) the first pipe failure */
	ScExecReader output;
	ScExecReader errors;
};

static void
sc_exec_run_free (ScExecRun *run)
{
	g_clear_object (&run->subprocess);
	g_clear_object (&run->io_cancellable);
	g_clear_error (&run->io_error);
	g_clear_pointer (&run->output.data, g_byte_array_unref);
	g_clear_pointer (&run->errors.data, g_byte_array_unref);
	g_free (run);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (ScExecRun, sc_exec_run_free)

/* Runs in the child between fork and exec: async-signal-safe calls only. */
static void
sc_exec_child_setup (gpointer user_data)
{
	sigset_t pipe_set;

	/* its own process group, so a kill reaches whatever it started */
	(void) setpgid (0, 0);
	/* an ignored SIGPIPE survives exec; `producer | head` in a script needs it */
	(void) signal (SIGPIPE, SIG_DFL);
	sigemptyset (&pipe_set);
	sigaddset (&pipe_set, SIGPIPE);
	(void) sigprocmask (SIG_UNBLOCK, &pipe_set, NULL);
}

static void
sc_exec_run_kill (ScExecRun *run)
{
	/* never kill (0 or -1, …): that would be our own group, or everything */
	if ((run->process_group <= 1 || kill (-run->process_group, SIGKILL) == -1) &&
	    !run->exited)
		g_subprocess_force_exit (run->subprocess);
	/* a grandchild that left the group may hold the pipes open: stop waiting */
	g_cancellable_cancel (run->io_cancellable);
}

static void
sc_exec_run_io_failed (ScExecRun *run, GError *error)
{
	/* cancelled: we did it after a kill; broken pipe: the program stopped
	 * reading, which is its right — its exit status tells how it went */
	if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED) ||
	    g_error_matches (error, G_IO_ERROR, G_IO_ERROR_BROKEN_PIPE))
		return;
	if (run->io_error == NULL)
		run->io_error = g_error_copy (error);
}

static void sc_exec_read_cb (GObject *source, GAsyncResult *result, gpointer user_data);

static void
sc_exec_read_next (ScExecReader *reader)
{
	g_input_stream_read_async (reader->stream,
				   reader->buffer,
				   sizeof (reader->buffer),
				   G_PRIORITY_DEFAULT,
				   reader->run->io_cancellable,
				   sc_exec_read_cb,
				   reader);
}

static void
sc_exec_read_cb (GObject *source, GAsyncResult *result, gpointer user_data)
{
	ScExecReader *reader = user_data;
	g_autoptr(GError) error_local = NULL;
	gssize count = g_input_stream_read_finish (G_INPUT_STREAM (source), result, &error_local);

	if (count <= 0) {
		if (count < 0)
			sc_exec_run_io_failed (reader->run, error_local);
		reader->run->pending--;
		return;
	}
	if (reader->data->len < reader->keep) {
		gsize room = reader->keep - reader->data->len;
		g_byte_array_append (reader->data, reader->buffer, MIN ((gsize) count, room));
		if ((gsize) count > room)
			reader->truncated = TRUE;
	} else {
		reader->truncated = TRUE;
	}
	sc_exec_read_next (reader);
}

static void
sc_exec_write_cb (GObject *source, GAsyncResult *result, gpointer user_data)
{
	ScExecRun *run = user_data;
	g_autoptr(GError) error_local = NULL;

	if (!g_output_stream_write_all_finish (G_OUTPUT_STREAM (source),
					       result,
					       NULL,
					       &error_local))
		sc_exec_run_io_failed (run, error_local);
	g_clear_error (&error_local);
	/* closing is what tells the program the message has ended; closing a
	 * pipe never blocks, so no need for close_async and GIO's thread pool */
	if (!g_output_stream_close (G_OUTPUT_STREAM (source), NULL, &error_local))
		sc_exec_run_io_failed (run, error_local);
	run->pending--;
}

static void
sc_exec_wait_cb (GObject *source, GAsyncResult *result, gpointer user_data)
{
	ScExecRun *run = user_data;
	g_autoptr(GError) error_local = NULL;

	/* not cancellable, so this only returns once the child is reaped */
	if (!g_subprocess_wait_finish (G_SUBPROCESS (source), result, &error_local))
		g_warning ("failed to wait for a handler program: %s", error_local->message);
	run->exited = TRUE;
	run->pending--;
}

static gboolean
sc_exec_timeout_cb (gpointer user_data)
{
	ScExecRun *run = user_data;

	run->timed_out = TRUE;
	sc_exec_run_kill (run);
	return G_SOURCE_REMOVE;
}

/* Any thread (the one that cancels): wake the program's loop, which
 * notices the cancellation itself.  Not a GCancellableSource: with GLib
 * 2.74 one cancelled from another thread while it is destroyed leaked
 * now and then (seen under valgrind in /exec/cancel). */
static void
sc_exec_cancelled_cb (GCancellable *cancellable, gpointer user_data)
{
	g_main_context_wakeup (user_data);
}

static GSubprocess *
sc_exec_spawn (const ScExecConfig *exec, ScStageContext *context, GError **error)
{
	g_autoptr(GSubprocessLauncher) launcher = NULL;

	launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_PIPE |
					      G_SUBPROCESS_FLAGS_STDOUT_PIPE |
					      G_SUBPROCESS_FLAGS_STDERR_PIPE);
	g_subprocess_launcher_setenv (launcher, "STAGECOACH_QUEUE_ID", context->queue_id, TRUE);
	g_subprocess_launcher_setenv (launcher,
				      "STAGECOACH_LIST_ID",
				      context->list_id != NULL ? context->list_id : "",
				      TRUE);
	g_subprocess_launcher_setenv (launcher,
				      "STAGECOACH_SENDER",
				      context->sender != NULL ? context->sender : "",
				      TRUE);
	g_subprocess_launcher_setenv (launcher,
				      "STAGECOACH_STAGE",
				      context->stage != NULL ? context->stage : "",
				      TRUE);
	g_subprocess_launcher_set_child_setup (launcher, sc_exec_child_setup, NULL, NULL);
	return g_subprocess_launcher_spawnv (launcher, (const char *const *) exec->argv, error);
}

/* Spawns the program and serves its pipes until it has exited and they are
 * closed, or until the timeout or cancellation killed it. */
static ScExecRun *
sc_exec_run_program (const ScExecConfig *exec, ScStageContext *context, GError **error)
{
	g_autoptr(ScExecRun) run = g_new0 (ScExecRun, 1);
	g_autoptr(GMainContext) main_context = g_main_context_new ();
	g_autoptr(GSource) timeout_source = NULL;
	gulong cancel_handler = 0;
	GOutputStream *input;
	const char *identifier;
	gsize size = 0;
	const guint8 *data = g_bytes_get_data (context->current, &size);
	guint64 max_size = context->config != NULL ? context->config->max_message_size : 0;
	sigset_t pipe_set;
	sigset_t old_set;

	run->subprocess = sc_exec_spawn (exec, context, error);
	if (run->subprocess == NULL)
		return NULL;
	/* NULL when the program has already exited and been reaped */
	identifier = g_subprocess_get_identifier (run->subprocess);
	if (identifier != NULL)
		run->process_group = (pid_t) g_ascii_strtoll (identifier, NULL, 10);
	run->io_cancellable = g_cancellable_new ();
	/* GIO's async write on a pipe polls for room and then write()s it all:
	 * on a blocking pipe that waits for the program to read 50 MB while
	 * nobody drains its stdout.  Non-blocking, it writes what fits. */
	input = g_subprocess_get_stdin_pipe (run->subprocess);
	if (!g_unix_set_fd_nonblocking (g_unix_output_stream_get_fd (G_UNIX_OUTPUT_STREAM (input)),
					TRUE,
					error)) {
		g_prefix_error (error, "%s", _("failed to set up the pipe: "));
		sc_exec_run_kill (run);
		(void) g_subprocess_wait (run->subprocess, NULL, NULL);
		return NULL;
	}

	run->output.run = run;
	run->output.stream = g_subprocess_get_stdout_pipe (run->subprocess);
	run->output.data = g_byte_array_new ();
	/* without replace the output is drained, not kept */
	run->output.keep = !exec->replace ? 0 : max_size > 0 ? max_size : G_MAXSIZE;
	run->errors.run = run;
	run->errors.stream = g_subprocess_get_stderr_pipe (run->subprocess);
	run->errors.data = g_byte_array_new ();
	run->errors.keep = SC_EXEC_STDERR_KEEP;

	/* A program that stops reading makes our next write raise SIGPIPE in
	 * this thread; blocked, the write fails with EPIPE instead.  The
	 * writes happen here: pipes are pollable, so GIO does them on this
	 * thread's context and not in its thread pool. */
	sigemptyset (&pipe_set);
	sigaddset (&pipe_set, SIGPIPE);
	pthread_sigmask (SIG_BLOCK, &pipe_set, &old_set);

	g_main_context_push_thread_default (main_context);
	run->pending = 4;
	g_output_stream_write_all_async (input,
					 data,
					 size,
					 G_PRIORITY_DEFAULT,
					 run->io_cancellable,
					 sc_exec_write_cb,
					 run);
	sc_exec_read_next (&run->output);
	sc_exec_read_next (&run->errors);
	g_subprocess_wait_async (run->subprocess, NULL, sc_exec_wait_cb, run);
	timeout_source = g_timeout_source_new ((guint) CLAMP (exec->timeout / 1000, 1, G_MAXUINT));
	g_source_set_callback (timeout_source, sc_exec_timeout_cb, run, NULL);
	g_source_set_static_name (timeout_source, "[stagecoach] exec timeout");
	g_source_attach (timeout_source, main_context);
	if (context->cancellable != NULL)
		cancel_handler = g_cancellable_connect (context->cancellable,
							G_CALLBACK (sc_exec_cancelled_cb),
							main_context,
							NULL);
	while (run->pending > 0) {
		if (!run->cancelled && g_cancellable_is_cancelled (context->cancellable)) {
			run->cancelled = TRUE;
			sc_exec_run_kill (run);
		}
		g_main_context_iteration (main_context, TRUE);
	}
	g_cancellable_disconnect (context->cancellable, cancel_handler);
	g_source_destroy (timeout_source);
	g_main_context_pop_thread_default (main_context);

	if (!sigismember (&old_set, SIGPIPE)) {
		sigset_t pending;
		if (sigpending (&pending) == 0 && sigismember (&pending, SIGPIPE)) {
			struct timespec zero = {0, 0};
			(void) sigtimedwait (&pipe_set, NULL, &zero);
		}
		pthread_sigmask (SIG_SETMASK, &old_set, NULL);
	}
	return g_steal_pointer (&run);
}

/* The first lines of stderr, trimmed, as the recorded error. (transfer full) */
static char *
sc_exec_stderr_text (ScExecReader *errors)
{
	g_autofree char *valid = NULL;
	g_auto(GStrv) lines = NULL;
	g_autoptr(GString) text = g_string_new (NULL);

	if (errors->data->len == 0)
		return g_strdup ("");
	valid = g_utf8_make_valid ((const char *) errors->data->data, (gssize) errors->data->len);
	lines = g_strsplit (g_strstrip (valid), "\n", SC_EXEC_STDERR_LINES + 1);
	for (guint i = 0; lines[i] != NULL && i < SC_EXEC_STDERR_LINES; i++) {
		if (i > 0)
			g_string_append_c (text, '\n');
		g_string_append (text, g_strchomp (lines[i]));
	}
	if (errors->truncated || g_strv_length (lines) > SC_EXEC_STDERR_LINES)
		g_string_append (text, " …");
	return g_string_free (g_steal_pointer (&text), FALSE);
}

static void
sc_exec_set_error (GError **error, ScStageError code, const char *what, ScExecRun *run)
{
	g_autofree char *text = sc_exec_stderr_text (&run->errors);

	if (*text == '\0')
		g_set_error_literal (error, SC_STAGE_ERROR, code, what);
	else
		g_set_error (error, SC_STAGE_ERROR, code, "%s: %s", what, text);
}

static gboolean
sc_exec_judge (const ScExecConfig *exec, ScStageContext *context, ScExecRun *run, GError **error)
{
	g_autofree char *what = NULL;
	int status;

	if (run->cancelled) {
		g_set_error_literal (error,
				     SC_STAGE_ERROR,
				     SC_STAGE_ERROR_TRANSIENT,
				     _("killed: stagecoach is shutting down"));
		return FALSE;
	}
	if (run->timed_out) {
		g_autofree char *timeout = sc_duration_format (exec->timeout);
		what = g_strdup_printf (_("killed after the timeout of %s"), timeout);
		sc_exec_set_error (error, SC_STAGE_ERROR_TRANSIENT, what, run);
		return FALSE;
	}
	if (g_subprocess_get_if_signaled (run->subprocess)) {
		int signal_number = g_subprocess_get_term_sig (run->subprocess);
		what = g_strdup_printf (_("killed by signal %d (%s)"),
					signal_number,
					g_strsignal (signal_number));
		sc_exec_set_error (error, SC_STAGE_ERROR_PERMANENT, what, run);
		return FALSE;
	}
	status = g_subprocess_get_exit_status (run->subprocess);
	if (status != 0) {
		what = g_strdup_printf (_("exit %d"), status);
		sc_exec_set_error (error,
				   status == EX_TEMPFAIL ? SC_STAGE_ERROR_TRANSIENT
							 : SC_STAGE_ERROR_PERMANENT,
				   what,
				   run);
		return FALSE;
	}
	/* it said yes, but did we hear all it said? */
	if (run->io_error != NULL) {
		g_set_error (error,
			     SC_STAGE_ERROR,
			     SC_STAGE_ERROR_TRANSIENT,
			     _("failed to exchange data with the program: %s"),
			     run->io_error->message);
		return FALSE;
	}
	if (!exec->replace)
		return TRUE;
	if (run->output.truncated) {
		g_autofree char *limit = g_format_size_full (run->output.keep, G_FORMAT_SIZE_IEC_UNITS);
		g_set_error (error,
			     SC_STAGE_ERROR,
			     SC_STAGE_ERROR_PERMANENT,
			     _("its output is larger than %s (%s)"),
			     limit,
			     SC_KEY_MAX_MESSAGE_SIZE);
		return FALSE;
	}
	if (run->output.data->len == 0) {
		g_set_error_literal (error,
				     SC_STAGE_ERROR,
				     SC_STAGE_ERROR_PERMANENT,
				     _("exit 0 but no output, and replace is set: refusing an empty "
				       "message"));
		return FALSE;
	}
	{
		/* What inject would refuse must not reach the list either:
		 * a handler that prints garbage stops the message (dead, with
		 * a notification), the operator fixes it and retries. */
		g_autoptr(GBytes) output = g_byte_array_free_to_bytes (g_steal_pointer (&run->output.data));
		g_autoptr(GError) error_local = NULL;
		ScMessageHeaders *headers = sc_message_headers_parse (output, &error_local);
		if (headers == NULL) {
			g_set_error (error, SC_STAGE_ERROR, SC_STAGE_ERROR_PERMANENT,
				     _("its output is not a message: %s"), error_local->message);
			return FALSE;
		}
		sc_message_headers_free (headers);
		g_clear_pointer (&context->output, g_bytes_unref);
		context->output = g_steal_pointer (&output);
	}
	return TRUE;
}

static gboolean
sc_exec_run (ScStageContext *context, GError **error)
{
	const char *name = context->stage_argument != NULL ? context->stage_argument : "";
	const ScExecConfig *exec = sc_config_get_exec (context->config, name);
	g_autoptr(ScExecRun) run = NULL;
	g_autoptr(GError) error_local = NULL;

	if (exec == NULL || exec->argv == NULL || exec->argv[0] == NULL) {
		/* check() ran at load: the configuration changed under us */
		g_set_error (error,
			     SC_STAGE_ERROR,
			     SC_STAGE_ERROR_TRANSIENT,
			     _("exec:%s: no command in [%s%s]"),
			     name,
			     SC_CONFIG_SECTION_HANDLER_PREFIX,
			     name);
		return FALSE;
	}
	if (g_cancellable_set_error_if_cancelled (context->cancellable, &error_local)) {
		sc_stage_error_propagate (error, error_local, NULL);
		g_prefix_error (error, "exec:%s: ", name);
		return FALSE;
	}
	run = sc_exec_run_program (exec, context, &error_local);
	if (run == NULL) {
		/* not found, not executable, no memory: fixable, so transient */
		g_set_error (error,
			     SC_STAGE_ERROR,
			     SC_STAGE_ERROR_TRANSIENT,
			     _("exec:%s: failed to start %s: %s"),
			     name,
			     exec->argv[0],
			     error_local->message);
		return FALSE;
	}
	if (!sc_exec_judge (exec, context, run, error)) {
		g_prefix_error (error, "exec:%s: ", name);
		return FALSE;
	}
	return TRUE;
}

static gboolean
sc_exec_check (const ScConfig *config,
	       const ScListConfig *list,
	       const char *stage_argument,
	       GPtrArray *warnings,
	       GError **error)
{
	if (stage_argument == NULL || sc_config_get_exec (config, stage_argument) == NULL) {
		g_set_error (error,
			     SC_CONFIG_ERROR,
			     SC_CONFIG_ERROR_INVALID,
			     /* TRANSLATORS: pipeline is a key, [handler:NAME] a section */
			     _("%s: stage “exec:%s” has no [%s%s] section"),
			     SC_KEY_LIST_PIPELINE,
			     stage_argument != NULL ? stage_argument : "",
			     SC_CONFIG_SECTION_HANDLER_PREFIX,
			     stage_argument != NULL ? stage_argument : "");
		return FALSE;
	}
	return TRUE;
}

const ScHandler sc_handler_exec = {
    .name = "exec",
    .run = sc_exec_run,
    .check = sc_exec_check,
};
