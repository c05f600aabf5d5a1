/* sc-ingress-private.h — the acceptor's life cycle, for sc-ingress.c
 * (the doors only see sc-ingress.h). */
#pragma once

#include "sc-ingress.h"

G_BEGIN_DECLS

/* Opens its own spool connection and starts the thread that commits on
 * it; rounds are handed to it from @context (the ingress thread's);
 * answers reach each caller on the context it submitted from. */
ScAcceptor *sc_acceptor_new (ScConfig *config, GMainContext *context, GError **error);
/* @hook runs on @context after each commit that stored a message. */
void sc_acceptor_set_hook (ScAcceptor *acceptor, GMainContext *context, GSourceFunc hook, gpointer user_data);
void sc_acceptor_set_config (ScAcceptor *acceptor, ScConfig *config);
void sc_acceptor_set_handover (ScAcceptor *acceptor, const ScHandover *handover);
/* For tests: the longest wait for the rest of a cohort (µs; see
 * sc-acceptor.c writer_thread()). */
void sc_acceptor_set_linger (ScAcceptor *acceptor, gint64 usec);
/* Commits what is queued (its answers wait on their callers' contexts),
 * refuses what comes later, and joins the writer thread. */
void sc_acceptor_stop (ScAcceptor *acceptor);
void sc_acceptor_free (ScAcceptor *acceptor);

G_END_DECLS
