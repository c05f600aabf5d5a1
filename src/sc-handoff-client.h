/* sc-handoff-client.h — the client side of the local hand-off (the
 * protocol is described in sc-handoff-server.c).  libc only: the lean
 * `stagecoach` front (sc-front.c) links nothing else, and the full
 * program uses the same code. */
#pragma once

#include <stdint.h>
#include <stddef.h>

#define SC_HANDOFF_SOCKET "ingress.sock"
#define SC_HANDOFF_GREETING "stagecoach-handoff/1"
/* sc_handoff_client_run(): no daemon took the message; standard input
 * was not read, the caller writes the spool itself. */
#define SC_HANDOFF_NO_DAEMON (-1)

/* FNV-1a 64 of a configuration file's bytes: the daemon hands a command
 * the message only when both read the same configuration (@data nullable
 * with @size 0: built-in defaults). */
uint64_t sc_handoff_hash (const void *data, size_t size);

/* Connects to STATE-DIR/ingress.sock (paths longer than sun_path through
 * /proc/self/fd).  -1 with errno. */
int sc_handoff_connect (const char *state_dir);

/* Gives @command ("inject" or "sendmail") with its arguments @argv[0..argc)
 * (after the command's name) and the message read from @in_fd to the
 * daemon listening in @state_dir, prints the daemon's answer on stdout/stderr and
 * returns its exit code; SC_HANDOFF_NO_DAEMON when no daemon took it
 * (none listening, another configuration, stopping): @in_fd untouched. */
int sc_handoff_client_run (const char *state_dir,
			   uint64_t config_hash,
			   const char *command,
			   int argc,
			   char *const *argv,
			   int in_fd);
