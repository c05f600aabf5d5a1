/* test-deliver-mailer.c — the mailer states the runner reads to key deliver
 * jobs by mailer (sc_deliver_mailer_key_for_list), without any server: a
 * circuit is opened by recording failures. */
#include "config.h"

#include "sc-deliver-mailer.h"
#include "sc-test-util.h"

typedef struct {
	char *dir;
	ScConfig *config;
} Fixture;

static void
setup (Fixture *fixture, gconstpointer data)
{
	const char *text = "[stagecoach]\n"
			   "spool=spool\n"
			   "[mailer:a]\n"
			   "url=smtp://127.0.0.1:2501\n"
			   "priority=1\n"
			   "max-connections=2\n"
			   "[mailer:b]\n"
			   "url=smtp://127.0.0.1:2502\n"
			   "priority=2\n"
			   "max-connections=7\n"
			   "[list:all.example.org]\n"
			   "[list:reversed.example.org]\n"
			   "mailers=b;a\n";
	g_autofree char *path = NULL;
	g_autoptr(GError) error = NULL;

	fixture->dir = sc_test_make_tmpdir ("sc-deliver-mailer");
	path = sc_test_write_file (fixture->dir, "stagecoach.conf", text);
	fixture->config = sc_config_load (path, &error);
	g_assert_no_error (error);
	sc_mailer_state_reset_all ();
}

static void
teardown (Fixture *fixture, gconstpointer data)
{
	sc_mailer_state_reset_all ();
	sc_config_unref (fixture->config);
	sc_test_remove_tree (fixture->dir);
	g_free (fixture->dir);
}

static const char *
key_name (Fixture *fixture, const char *list_id)
{
	const ScListConfig *list = sc_config_get_list (fixture->config, list_id);
	const ScMailerConfig *mailer;

	g_assert_nonnull (list);
	mailer = sc_deliver_mailer_key_for_list (fixture->config, list);
	return mailer != NULL ? mailer->name : NULL;
}

static void
open_circuit (const ScMailerConfig *mailer, gint64 cooldown)
{
	ScMailerState *state = sc_mailer_state_get (mailer);

	for (guint i = 0; i < 3; i++)
		sc_mailer_state_record_failure (state, "421 4.3.2 test", 3, cooldown);
}

/* The key follows the list's mailer order and skips open circuits. */
static void
test_key_skips_open_circuits (Fixture *fixture, gconstpointer data)
{
	const ScMailerConfig *a = sc_config_get_mailer (fixture->config, "a");
	const ScMailerConfig *b = sc_config_get_mailer (fixture->config, "b");
	const ScListConfig *all = sc_config_get_list (fixture->config, "all.example.org");

	/* never used: closed */
	g_assert_false (sc_mailer_state_is_open (a));
	g_assert_cmpstr (key_name (fixture, "all.example.org"), ==, "a");
	g_assert_cmpstr (key_name (fixture, "reversed.example.org"), ==, "b");
	g_assert_cmpuint (sc_deliver_mailer_key_for_list (fixture->config, all)->max_connections, ==, 2);

	open_circuit (a, G_TIME_SPAN_HOUR);
	g_assert_true (sc_mailer_state_is_open (a));
	g_assert_false (sc_mailer_state_is_open (b));
	g_assert_cmpstr (key_name (fixture, "all.example.org"), ==, "b");
	g_assert_cmpuint (sc_deliver_mailer_key_for_list (fixture->config, all)->max_connections, ==, 7);
	g_assert_cmpstr (key_name (fixture, "reversed.example.org"), ==, "b");

	open_circuit (b, G_TIME_SPAN_HOUR);
	g_assert_null (key_name (fixture, "all.example.org"));
	g_assert_null (key_name (fixture, "reversed.example.org"));

	sc_mailer_state_record_success (sc_mailer_state_get (a));
	g_assert_false (sc_mailer_state_is_open (a));
	g_assert_cmpstr (key_name (fixture, "all.example.org"), ==, "a");
	g_assert_cmpstr (key_name (fixture, "reversed.example.org"), ==, "a");
}

/* Cool-down over: closed for the key until a job takes the one half-open
 * trial; while the trial runs, the key moves on. */
static void
test_key_half_open (Fixture *fixture, gconstpointer data)
{
	const ScMailerConfig *a = sc_config_get_mailer (fixture->config, "a");
	ScMailerState *state = sc_mailer_state_get (a);

	open_circuit (a, 1); /* 1 µs */
	g_usleep (2000);
	g_assert_false (sc_mailer_state_is_open (a));
	g_assert_cmpstr (key_name (fixture, "all.example.org"), ==, "a");
	g_assert_true (sc_mailer_state_try_use (state)); /* this job is the trial */
	g_assert_true (sc_mailer_state_is_open (a));
	g_assert_cmpstr (key_name (fixture, "all.example.org"), ==, "b");
	g_assert_false (sc_mailer_state_try_use (state)); /* and the only one */
	sc_mailer_state_record_success (state);
	g_assert_cmpstr (key_name (fixture, "all.example.org"), ==, "a");
}

/* A mailer reconfigured (another url) starts closed, as its next use will. */
static void
test_key_after_reconfigure (Fixture *fixture, gconstpointer data)
{
	ScMailerConfig *a = (ScMailerConfig *) sc_config_get_mailer (fixture->config, "a");
	g_autofree char *old_url = NULL;

	open_circuit (a, G_TIME_SPAN_HOUR);
	g_assert_cmpstr (key_name (fixture, "all.example.org"), ==, "b");
	old_url = a->url;
	a->url = g_strdup ("smtp://127.0.0.1:2503");
	g_assert_false (sc_mailer_state_is_open (a));
	g_assert_cmpstr (key_name (fixture, "all.example.org"), ==, "a");
	g_free (a->url);
	a->url = g_steal_pointer (&old_url);
}

typedef struct {
	ScMailerState *state;
	const ScMailerConfig *mailer;
	GMutex lock;
	GPtrArray *order; /* who got a slot, in order */
} PoolRace;

static void
note_slot (PoolRace *race, const char *who)
{
	g_mutex_lock (&race->lock);
	g_ptr_array_add (race->order, (gpointer) who);
	g_mutex_unlock (&race->lock);
}

static gpointer
waiting_thread (gpointer data)
{
	PoolRace *race = data;
	ScSmtpConnection *connection = sc_mailer_state_acquire (race->state, race->mailer, NULL);

	note_slot (race, "waiter");
	g_usleep (50 * 1000);
	sc_mailer_state_release (race->state, connection, FALSE);
	return NULL;
}

static guint
waiting (ScMailerState *state)
{
	ScMailerStats stats = {0};

	sc_mailer_state_get_stats (state, &stats);
	g_free (stats.last_error);
	return stats.waiting;
}

/* Slots go first come, first served: a thread that gives a connection
 * back and at once asks again (a large message's next batch) queues
 * behind the one already waiting.  Before, it took the slot back before
 * the waiter it woke could run, and a waiter could starve for hundreds of
 * milliseconds under load. */
static void
test_pool_first_come_first_served (Fixture *fixture, gconstpointer data)
{
	PoolRace race = {.mailer = sc_config_get_mailer (fixture->config, "a"), .order = g_ptr_array_new ()};
	ScSmtpConnection *held[2];
	ScSmtpConnection *again;
	GThread *thread;

	g_mutex_init (&race.lock);
	race.state = sc_mailer_state_get (race.mailer);
	/* max-connections=2: both taken, the next one waits */
	held[0] = sc_mailer_state_acquire (race.state, race.mailer, NULL);
	held[1] = sc_mailer_state_acquire (race.state, race.mailer, NULL);
	thread = g_thread_new ("waiter", waiting_thread, &race);
	for (guint i = 0; i < 500 && waiting (race.state) == 0; i++)
		g_usleep (10 * 1000);
	g_assert_cmpuint (waiting (race.state), ==, 1);

	sc_mailer_state_release (race.state, held[0], FALSE);
	again = sc_mailer_state_acquire (race.state, race.mailer, NULL);
	note_slot (&race, "again");
	sc_mailer_state_release (race.state, again, FALSE);
	sc_mailer_state_release (race.state, held[1], FALSE);
	g_thread_join (thread);
	g_assert_cmpuint (race.order->len, ==, 2);
	g_assert_cmpstr (race.order->pdata[0], ==, "waiter");
	g_assert_cmpstr (race.order->pdata[1], ==, "again");
	g_assert_cmpuint (waiting (race.state), ==, 0);
	g_ptr_array_unref (race.order);
	g_mutex_clear (&race.lock);
}

/* A waiter whose job is cancelled leaves the line: the one behind it
 * still gets the next slot. */
static void
test_pool_cancelled_waiter_leaves (Fixture *fixture, gconstpointer data)
{
	const ScMailerConfig *mailer = sc_config_get_mailer (fixture->config, "a");
	ScMailerState *state = sc_mailer_state_get (mailer);
	g_autoptr(GCancellable) cancellable = g_cancellable_new ();
	PoolRace race = {.state = state, .mailer = mailer, .order = g_ptr_array_new ()};
	ScSmtpConnection *held[2];
	GThread *thread;

	g_mutex_init (&race.lock);
	held[0] = sc_mailer_state_acquire (state, mailer, NULL);
	held[1] = sc_mailer_state_acquire (state, mailer, NULL);
	g_cancellable_cancel (cancellable);
	/* cancelled while it would wait: no slot, nobody's place taken */
	g_assert_null (sc_mailer_state_acquire (state, mailer, cancellable));
	g_assert_cmpuint (waiting (state), ==, 0);
	thread = g_thread_new ("waiter", waiting_thread, &race);
	for (guint i = 0; i < 500 && waiting (state) == 0; i++)
		g_usleep (10 * 1000);
	sc_mailer_state_release (state, held[0], FALSE);
	g_thread_join (thread);
	g_assert_cmpuint (race.order->len, ==, 1);
	sc_mailer_state_release (state, held[1], FALSE);
	g_ptr_array_unref (race.order);
	g_mutex_clear (&race.lock);
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	g_test_add ("/deliver-mailer/key/skips-open-circuits", Fixture, NULL, setup,
		    test_key_skips_open_circuits, teardown);
	g_test_add ("/deliver-mailer/key/half-open", Fixture, NULL, setup, test_key_half_open, teardown);
	g_test_add ("/deliver-mailer/pool/first-come-first-served", Fixture, NULL, setup,
		    test_pool_first_come_first_served, teardown);
	g_test_add ("/deliver-mailer/pool/cancelled-waiter-leaves", Fixture, NULL, setup,
		    test_pool_cancelled_waiter_leaves, teardown);
	g_test_add ("/deliver-mailer/key/after-reconfigure", Fixture, NULL, setup,
		    test_key_after_reconfigure, teardown);
	return g_test_run ();
}
