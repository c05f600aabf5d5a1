/* sc-test-sink.h — Postfix's smtp-sink on 127.0.0.1 for SMTP delivery tests. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _ScTestSink ScTestSink;

typedef struct {
	char *path;            /* the dump file */
	char *helo;            /* (nullable) X-Helo-Args */
	char *sender;          /* the address in X-Mail-Args, without <>, "" for <> */
	GPtrArray *recipients; /* (element-type utf8) X-Rcpt-Args addresses, without <>, in order */
	GBytes *data;          /* the message as received, unstuffed, with CRLF line ends */
	gboolean complete;     /* the dump ends with smtp-sink's closing empty line */
} ScTestSinkMessage;

void sc_test_sink_message_free (ScTestSinkMessage *message);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ScTestSinkMessage, sc_test_sink_message_free)

/* Starts smtp-sink on a free 127.0.0.1 port (another port is tried when
 * one is taken meanwhile), dumping every transaction to its own file,
 * with @extra_args (NULL-terminated, e.g. {"-r", "mail", NULL}; nullable)
 * added to the command line; returns once it accepts connections (that
 * probe is one SMTP session of its own: mind "-n").  As root the sink runs
 * as nobody.  It gets SIGTERM if the calling thread ends first, so call it
 * from the test's main thread.  Returns NULL after g_test_skip() when
 * smtp-sink is not installed. (transfer full) */
ScTestSink *sc_test_sink_start (const char *const *extra_args);
/* Stops it (if running) and starts it again on the same port with other
 * @extra_args; earlier dumps are kept. */
void sc_test_sink_restart (ScTestSink *sink, const char *const *extra_args);
guint16 sc_test_sink_get_port (ScTestSink *sink);
/* "smtp://127.0.0.1:PORT" (transfer full) */
char *sc_test_sink_get_url (ScTestSink *sink);
/* The running smtp-sink's PID, 0 when stopped (to kill it mid-transfer). */
GPid sc_test_sink_get_pid (ScTestSink *sink);
/* Every dump, parsed, in no particular order.
 * (transfer container) (element-type ScTestSinkMessage) */
GPtrArray *sc_test_sink_get_messages (ScTestSink *sink);
/* How many dump files exist, complete or not.  smtp-sink opens one at
 * MAIL and removes it a moment after an aborted transaction. */
guint sc_test_sink_count_dumps (ScTestSink *sink);
/* Waits up to @timeout_ms for exactly @count dump files (0: every
 * aborted transaction's file is gone).  FALSE on timeout. */
gboolean sc_test_sink_wait_dumps (ScTestSink *sink, guint count, guint timeout_ms);
/* Waits up to @timeout_ms for @count complete dumps: smtp-sink may finish
 * a dump just after its reply to ".".  FALSE on timeout. */
gboolean sc_test_sink_wait_messages (ScTestSink *sink, guint count, guint timeout_ms);
/* RCPT commands for @address across all dumps. */
guint sc_test_sink_count_recipient (ScTestSink *sink, const char *address);
/* SIGTERM, then SIGKILL after 2 s, by PID; waits for it; keeps the dumps. */
void sc_test_sink_stop (ScTestSink *sink);
/* Stops it if running and removes its folder. */
void sc_test_sink_free (ScTestSink *sink);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (ScTestSink, sc_test_sink_free)

G_END_DECLS
