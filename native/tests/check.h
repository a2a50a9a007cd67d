/*
 * check.h - the tiny harness every C test shares: CHECK counts passes and failures and prints the
 * first failures with their place; check_summary prints the closing "name: N passed, M failed"
 * line (the form CI reads) and gives the exit status.
 */
#ifndef EMBEDD_TEST_CHECK_H
#define EMBEDD_TEST_CHECK_H

#include <stdio.h>

static int check_passed, check_failed;

/* Failures past this many are counted but not printed, so one broken kernel cannot flood the log. */
#define CHECK_MAX_PRINTED 50

#define CHECK(cond, ...)                                                                         \
    do {                                                                                         \
        if (cond) {                                                                              \
            check_passed++;                                                                      \
        } else if (++check_failed <= CHECK_MAX_PRINTED) {                                        \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                 \
            fprintf(stderr, __VA_ARGS__);                                                        \
            fputc('\n', stderr);                                                                 \
        }                                                                                        \
    } while (0)

/* Prints "<name>: N passed, M failed<extra>" and returns the process exit status. */
static inline int check_summary(const char *name, const char *extra) {
    printf("%s: %d passed, %d failed%s\n", name, check_passed, check_failed, extra ? extra : "");
    return check_failed == 0 && check_passed > 0 ? 0 : 1;
}

#endif
