/* fuzz.h — the entry points every fuzz target defines.  The same target
 * file links either with libFuzzer (-Dfuzzing=true, clang) or with
 * replay.c, which feeds it the checked-in inputs as a normal test. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* One-time set-up before the first input; may be a no-op. */
int LLVMFuzzerInitialize (int *argc, char ***argv);
/* Runs one input; returns 0.  A bug is a crash, a sanitizer report or
 * abort() on a broken promise of the code under test. */
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* abort() with a message: a property of the code under test failed. */
#define SC_FUZZ_ASSERT(condition)                                                             \
	do {                                                                                  \
		if (!(condition)) {                                                           \
			g_printerr ("%s:%d: fuzz property failed: %s\n", __FILE__, __LINE__,   \
				    #condition);                                              \
			abort ();                                                             \
		}                                                                             \
	} while (0)
