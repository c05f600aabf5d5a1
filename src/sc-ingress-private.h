/* sc-ingress-private.h — the acceptor's life cycle, for sc-ingress.c
 * (the doors only see sc-ingress.h). */
#pragma once

#include "sc-ingress.h"

G_BEGIN_DECLS

/* Opens its own spool connection; commits on @context (the ingress
 * thread's), which must be the thread-default one of the calling thread. */
ScAcceptor *sc_acceptor_new (ScConfig *config, GMainContext *context, GError **error);
/* @hook runs on @context after each commit that stored a message. */
void sc_acceptor_set_hook (ScAcceptor *acceptor, GMainContext *context, GSourceFunc hook, gpointer user_data);
void sc_acceptor_set_config (ScAcceptor *acceptor, ScConfig *config);
/* Commits and answers what is queued; refuses what comes later. */
void sc_acceptor_stop (ScAcceptor *acceptor);
void sc_acceptor_free (ScAcceptor *acceptor);

G_END_DECLS
