/* bench-wake.c — what one thread hand-off costs on this machine.
 *
 *   build/tests/bench-wake [ROUND-TRIPS]
 *
 * Two threads pass a token back and forth through GAsyncQueues (a mutex
 * and a condition variable each, as the daemon's hand-offs are): each
 * side sleeps until the other wakes it.  Measured twice: the threads
 * pinned to two different CPUs, then both to CPU 0.  Prints the wall time
 * and the CPU time (both threads, user + system) per round trip, and a
 * JSON line for tests/bench/bench.py's machine line.
 *
 * Why: on the 2-vCPU VM of stop 28 a round trip across CPUs cost 68-111 µs
 * of CPU (an idle vCPU halts, and waking it goes through the hypervisor)
 * against ~5 µs on one CPU, so a message's 7 sleeps and wake-ups between
 * the daemon's threads and its peers are a large part of its CPU
 * (doc/DECISIONS.md, "Speed, stop 28").
 */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <glib.h>

typedef struct {
	GAsyncQueue *ping;
	GAsyncQueue *pong;
	int count;
	int cpu;
} Peer;

static void
pin (int cpu)
{
	cpu_set_t set;
	CPU_ZERO (&set);
	CPU_SET (cpu, &set);
	pthread_setaffinity_np (pthread_self (), sizeof set, &set);
}

static double
seconds (clockid_t clock)
{
	struct timespec now;
	clock_gettime (clock, &now);
	return now.tv_sec + now.tv_nsec / 1e9;
}

static gpointer
answer (gpointer data)
{
	Peer *peer = data;
	pin (peer->cpu);
	for (int i = 0; i < peer->count; i++)
		g_async_queue_push (peer->pong, g_async_queue_pop (peer->ping));
	return NULL;
}

/* µs per round trip, wall and process CPU, with the answering thread on @cpu */
static void
measure (int count, int cpu, double *out_wall, double *out_cpu)
{
	Peer peer = {g_async_queue_new (), g_async_queue_new (), count, cpu};
	GThread *thread;
	double wall0, cpu0;

	pin (0);
	thread = g_thread_new ("answer", answer, &peer);
	/* a first exchange, so that the thread is running and pinned */
	g_async_queue_push (peer.ping, GINT_TO_POINTER (1));
	g_async_queue_pop (peer.pong);
	wall0 = seconds (CLOCK_MONOTONIC);
	cpu0 = seconds (CLOCK_PROCESS_CPUTIME_ID);
	for (int i = 1; i < count; i++) {
		g_async_queue_push (peer.ping, GINT_TO_POINTER (1));
		g_async_queue_pop (peer.pong);
	}
	*out_wall = (seconds (CLOCK_MONOTONIC) - wall0) * 1e6 / (count - 1);
	*out_cpu = (seconds (CLOCK_PROCESS_CPUTIME_ID) - cpu0) * 1e6 / (count - 1);
	g_thread_join (thread);
	g_async_queue_unref (peer.ping);
	g_async_queue_unref (peer.pong);
}

int
main (int argc, char **argv)
{
	int count = argc > 1 ? atoi (argv[1]) : 20000;
	double cross_wall = -1, cross_cpu = -1, same_wall, same_cpu;

	if (count < 2) {
		fprintf (stderr, "usage: %s [ROUND-TRIPS, at least 2]\n", argv[0]);
		return 2;
	}
	if (g_get_num_processors () > 1) {
		measure (count, 1, &cross_wall, &cross_cpu);
		printf ("across two CPUs: %.1f µs wall, %.1f µs CPU per round trip\n", cross_wall, cross_cpu);
	}
	measure (count, 0, &same_wall, &same_cpu);
	printf ("on one CPU: %.1f µs wall, %.1f µs CPU per round trip\n", same_wall, same_cpu);
	printf ("{\"cross_wall\": %.2f, \"cross_cpu\": %.2f, \"same_wall\": %.2f, \"same_cpu\": %.2f}\n",
		cross_wall, cross_cpu, same_wall, same_cpu);
	return 0;
}
