/*  fuzz.h - what the libFuzzer targets of tests/fuzz share: the check
    that turns a broken promise into a crash libFuzzer records, a
    per-process scratch directory for the file readers, and the quieting
    of the node's log lines.

    Every target defines LLVMFuzzerTestOneInput (and may define
    LLVMFuzzerInitialize); libFuzzer's main runs them. Targets are
    deterministic: the same input does the same thing in every run.
*/
#ifndef QKV_FUZZ_H
#define QKV_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* libFuzzer's entry points. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Aborts with file, line and the condition's text when cond is false:
   for the promises a decoder makes about what it accepted (libFuzzer
   records the input as a crash). */
#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond))                                                           \
            fuzz_fail(__FILE__, __LINE__, #cond);                              \
    } while (0)

/* Prints where a check failed on file descriptor 2 and aborts. */
void fuzz_fail(const char *file, int line, const char *what)
    __attribute__((noreturn));

/* The process's scratch directory under /tmp (made on first use, removed
   with its files at exit). Returns its path, never NULL (aborts when it
   cannot be made). */
const char *fuzz_dir(void);

/* Deletes every file in the scratch directory (it holds no
   subdirectories). */
void fuzz_dir_clear(void);

/* Writes size bytes to the file name in the scratch directory (created or
   replaced). Aborts when the disk refuses: that is no finding. */
void fuzz_write_file(const char *name, const void *data, size_t size);

/* Sends the stdio stream stderr to /dev/null: qkv_say writes a line for
   every damaged file a reader refuses, which would flood the fuzzer's
   output and slow it down. libFuzzer, the sanitizers and fuzz_fail write
   to file descriptor 2 themselves, so their reports still show. */
void fuzz_quiet(void);

/* True when the len bytes at a and b are equal (a or b may be NULL when
   len is 0). */
bool fuzz_same(const void *a, const void *b, size_t len);

#endif
