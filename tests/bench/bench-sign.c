/* bench-sign.c — what the sign stage costs per message, beside decorate.
 *
 *   build/tests/bench-sign [--rounds K] [--corpus DIR]
 *
 * Decorates every corpus message once (as the pipeline would), then signs
 * each decorated message K times with an RSA-2048 key and K times with an
 * Ed25519 key (made now with OpenSSL), through sc_dkim_sign(): the stage's
 * own code, key file read and parsed at each use included.  The same for a
 * 4 KiB list post, the usual case, where the key's arithmetic dominates
 * rather than hashing.  One thread; wall and CPU time.  The last line is
 * JSON for tests/bench/bench.py (figure 10).
 */
#include "config.h"

#include <time.h>

#include <glib/gstdio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "sc-dkim.h"
#include "sc-gmime.h"
#include "sc-handler.h"

G_DEFINE_AUTOPTR_CLEANUP_FUNC (EVP_PKEY, EVP_PKEY_free)

typedef struct {
	double wall_us; /* per message */
	double cpu_us;
} Cost;

static double
cpu_now_us (void)
{
	struct timespec now;
	clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &now);
	return now.tv_sec * 1e6 + now.tv_nsec / 1e3;
}

static void
write_key (EVP_PKEY *key, const char *path)
{
	FILE *stream = fopen (path, "w");

	if (key == NULL || stream == NULL ||
	    PEM_write_PrivateKey (stream, key, NULL, NULL, 0, NULL, NULL) != 1)
		g_error ("cannot write %s", path);
	fclose (stream);
	g_chmod (path, 0600);
}

static GBytes *
decorate (ScListConfig *list, GBytes *message)
{
	const char *recipients[] = {"bob@example.net", NULL};
	ScStageContext context = {
	    .queue_id = "bench",
	    .stage = "decorate",
	    .list_id = list->id,
	    .sender = "alice@example.org",
	    .recipients = recipients,
	    .raw = message,
	    .current = message,
	    .list = list,
	};
	g_autoptr(GError) error = NULL;
	GBytes *output;

	if (!sc_handler_decorate.run (&context, &error))
		g_error ("decorate: %s", error->message);
	output = context.output != NULL ? g_bytes_ref (context.output) : g_bytes_ref (message);
	sc_stage_context_clear_outputs (&context);
	return output;
}

/* Signs every message @rounds times; messages sign refuses are skipped
 * (counted once in *out_refused). */
static Cost
sign_all (const ScListConfig *list, GPtrArray *messages, guint rounds, guint *out_signed)
{
	double wall = g_get_monotonic_time ();
	double cpu = cpu_now_us ();
	guint count = 0;

	for (guint r = 0; r < rounds; r++) {
		for (guint i = 0; i < messages->len; i++) {
			g_autoptr(GError) error = NULL;
			g_autoptr(GBytes) out = sc_dkim_sign (list, messages->pdata[i], &error);
			if (out != NULL)
				count++;
			else if (!g_error_matches (error, SC_STAGE_ERROR, SC_STAGE_ERROR_PERMANENT))
				g_error ("sign: %s", error->message);
		}
	}
	*out_signed = count / rounds;
	return (Cost){(g_get_monotonic_time () - wall) / MAX (count, 1),
		      (cpu_now_us () - cpu) / MAX (count, 1)};
}

static Cost
decorate_all (ScListConfig *list, GPtrArray *inputs, guint rounds)
{
	double wall = g_get_monotonic_time ();
	double cpu = cpu_now_us ();

	for (guint r = 0; r < rounds; r++) {
		for (guint i = 0; i < inputs->len; i++)
			g_bytes_unref (decorate (list, inputs->pdata[i]));
	}
	return (Cost){(g_get_monotonic_time () - wall) / (inputs->len * rounds),
		      (cpu_now_us () - cpu) / (inputs->len * rounds)};
}

static Cost
key_load_cost (const char *path, guint rounds)
{
	double wall = g_get_monotonic_time ();
	double cpu = cpu_now_us ();

	for (guint r = 0; r < rounds; r++) {
		if (!sc_dkim_key_load (path, NULL, NULL))
			g_error ("cannot load %s", path);
	}
	return (Cost){(g_get_monotonic_time () - wall) / rounds, (cpu_now_us () - cpu) / rounds};
}

static void
print_cost (const char *what, Cost cost)
{
	g_print ("%-34s %9.1f us/msg  %9.0f msgs/s  (CPU %.1f us)\n", what, cost.wall_us,
		 1e6 / cost.wall_us, cost.cpu_us);
}

int
main (int argc, char **argv)
{
	guint rounds = 10;
	g_autofree char *corpus = NULL;
	const GOptionEntry entries[] = {
	    {"rounds", 'r', 0, G_OPTION_ARG_INT, &rounds, "Sign each message this many times (10)", "K"},
	    {"corpus", 'c', 0, G_OPTION_ARG_FILENAME, &corpus, "The corpus folder ($SC_CORPUS, ../shared/corpus)", "DIR"},
	    {NULL},
	};
	g_autoptr(GOptionContext) options = g_option_context_new ("— the sign stage's cost per message");
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) inputs = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
	g_autoptr(GPtrArray) decorated = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
	g_autoptr(GPtrArray) small = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
	g_autoptr(GDir) dir = NULL;
	g_autoptr(GString) post = g_string_new (NULL);
	g_autofree char *keys = NULL;
	g_autofree char *rsa_path = NULL;
	g_autofree char *ed_path = NULL;
	char *unsubscribe[] = {(char *) "https://lists.example.org/unsubscribe/dev", NULL};
	ScListConfig list = {
	    .id = (char *) "dev.lists.example.org",
	    .name = (char *) "dev",
	    .subject_prefix = (char *) "[dev]",
	    .footer_template = (char *) "-- \nposted to $list_name\n",
	    .post = (char *) "dev@lists.example.org",
	    .unsubscribe = unsubscribe,
	    .unsubscribe_one_click = TRUE,
	    .dkim_domain = (char *) "lists.example.org",
	};
	ScListConfig rsa_list;
	ScListConfig ed_list;
	gsize bytes = 0;
	guint signed_rsa = 0;
	guint signed_ed = 0;
	guint dummy = 0;
	Cost decorate_cost, rsa_cost, ed_cost, rsa_small, ed_small, rsa_key, ed_key;
	const char *name;

	g_option_context_add_main_entries (options, entries, NULL);
	if (!g_option_context_parse (options, &argc, &argv, &error)) {
		g_printerr ("%s\n", error->message);
		return 64;
	}
	if (rounds == 0)
		rounds = 1;
	if (corpus == NULL)
		corpus = g_strdup (g_getenv ("SC_CORPUS") != NULL ? g_getenv ("SC_CORPUS") : "../shared/corpus");
	dir = g_dir_open (corpus, 0, &error);
	if (dir == NULL) {
		g_printerr ("bench-sign: %s\n", error->message);
		return 66;
	}
	sc_gmime_init ();
	if (!sc_dkim_ed25519_supported ())
		g_error ("this libopendkim cannot sign with Ed25519");

	keys = g_dir_make_tmp ("sc-bench-sign-XXXXXX", &error);
	g_assert_no_error (error);
	rsa_path = g_build_filename (keys, "rsa.pem", NULL);
	ed_path = g_build_filename (keys, "ed25519.pem", NULL);
	{
		g_autoptr(EVP_PKEY) rsa = EVP_RSA_gen (2048);
		g_autoptr(EVP_PKEY) ed = EVP_PKEY_Q_keygen (NULL, NULL, "ED25519");
		write_key (rsa, rsa_path);
		write_key (ed, ed_path);
	}
	rsa_list = list;
	rsa_list.dkim_selector = (char *) "rsa";
	rsa_list.dkim_key_file = rsa_path;
	ed_list = list;
	ed_list.dkim_selector = (char *) "ed";
	ed_list.dkim_key_file = ed_path;

	while ((name = g_dir_read_name (dir)) != NULL) {
		g_autofree char *path = NULL;
		char *contents = NULL;
		gsize length = 0;
		if (!g_str_has_suffix (name, ".eml"))
			continue;
		path = g_build_filename (corpus, name, NULL);
		if (!g_file_get_contents (path, &contents, &length, NULL))
			continue;
		g_ptr_array_add (inputs, g_bytes_new_take (contents, length));
	}
	for (guint i = 0; i < inputs->len; i++) {
		GBytes *output = decorate (&list, inputs->pdata[i]);
		bytes += g_bytes_get_size (output);
		g_ptr_array_add (decorated, output);
	}
	g_string_append (post, "From: Alice <alice@example.org>\r\nTo: dev@lists.example.org\r\n"
			       "Subject: a usual post\r\nMessage-ID: <post@example.org>\r\n"
			       "Date: Tue, 1 Dec 2026 10:00:00 +0000\r\n\r\n");
	while (post->len < 4096)
		g_string_append (post, "The quick brown fox jumps over the lazy dog, again and again.\r\n");
	{
		g_autoptr(GBytes) raw = g_bytes_new (post->str, post->len);
		g_ptr_array_add (small, decorate (&list, raw));
	}

	decorate_cost = decorate_all (&list, inputs, MAX (rounds / 2, 1));
	rsa_cost = sign_all (&rsa_list, decorated, rounds, &signed_rsa);
	ed_cost = sign_all (&ed_list, decorated, rounds, &signed_ed);
	rsa_small = sign_all (&rsa_list, small, rounds * 50, &dummy);
	ed_small = sign_all (&ed_list, small, rounds * 50, &dummy);
	rsa_key = key_load_cost (rsa_path, rounds * 50);
	ed_key = key_load_cost (ed_path, rounds * 50);

	g_print ("corpus %s: %u messages, %.1f MB decorated, %u signable; %u round(s), one thread\n",
		 corpus, inputs->len, bytes / 1e6, signed_rsa, rounds);
	print_cost ("decorate (corpus mean)", decorate_cost);
	print_cost ("sign rsa-2048 (corpus mean)", rsa_cost);
	print_cost ("sign ed25519 (corpus mean)", ed_cost);
	print_cost ("sign rsa-2048 (4 KiB post)", rsa_small);
	print_cost ("sign ed25519 (4 KiB post)", ed_small);
	print_cost ("  of which key read+check, rsa", rsa_key);
	print_cost ("  of which key read+check, ed25519", ed_key);
	g_print ("{\"messages\": %u, \"signable\": %u, \"rounds\": %u, \"decorate_us\": %.1f, "
		 "\"rsa_us\": %.1f, \"ed25519_us\": %.1f, \"rsa_small_us\": %.1f, "
		 "\"ed25519_small_us\": %.1f, \"rsa_key_us\": %.1f, \"ed25519_key_us\": %.1f}\n",
		 inputs->len, signed_rsa, rounds, decorate_cost.wall_us, rsa_cost.wall_us,
		 ed_cost.wall_us, rsa_small.wall_us, ed_small.wall_us, rsa_key.wall_us, ed_key.wall_us);
	g_assert_cmpuint (signed_rsa, ==, signed_ed);
	g_unlink (rsa_path);
	g_unlink (ed_path);
	g_rmdir (keys);
	return 0;
}
