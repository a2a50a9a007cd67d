/*
 * test_cpu.c - SIMD detection agrees with the kernel's view of the CPU (/proc/cpuinfo on Linux),
 * EMBEDD_SIMD is honoured (checked in child processes started with the variable set), and levels
 * the CPU cannot run are refused.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "embedd.h"
#include "quants.h"

#include "check.h"

/* Whether the flags line of /proc/cpuinfo lists `flag` (as a whole word); -1 if unreadable. */
static int cpuinfo_flags(char *buf, size_t len) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return -1;
    char line[8192];
    buf[0] = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "flags", 5) == 0 || strncmp(line, "Features", 8) == 0) {
            char *colon = strchr(line, ':');
            if (colon) snprintf(buf, len, " %s ", colon + 1);
            break;
        }
    }
    fclose(f);
    for (char *p = buf; *p; p++)
        if (*p == '\n' || *p == '\t') *p = ' ';
    return buf[0] ? 0 : -1;
}

__attribute__((unused)) static int has_flag(const char *flags, const char *flag) {
    char word[64];
    snprintf(word, sizeof word, " %s ", flag);
    return strstr(flags, word) != NULL;
}

static int expected_level(const char *flags) {
#if defined(__x86_64__)
    if (!(has_flag(flags, "avx2") && has_flag(flags, "fma") && has_flag(flags, "f16c") &&
          has_flag(flags, "bmi2")))
        return EMB_SIMD_SCALAR;
    if (!(has_flag(flags, "avx512f") && has_flag(flags, "avx512bw") && has_flag(flags, "avx512vl") &&
          has_flag(flags, "avx512dq")))
        return has_flag(flags, "avx_vnni") ? EMB_SIMD_AVXVNNI : EMB_SIMD_AVX2;
    return has_flag(flags, "avx512_vnni") ? EMB_SIMD_AVX512VNNI : EMB_SIMD_AVX512;
#elif defined(__aarch64__)
    (void)flags;
    return EMB_SIMD_NEON;
#else
    (void)flags;
    return EMB_SIMD_SCALAR;
#endif
}

/* Whether a CPU whose best level is det can run level; the AVX-VNNI level by its own cpuinfo flag
   (flags NULL: unknown, taken as absent), since AVX-512 CPUs may or may not have it. */
static int expected_runnable(int level, int det, const char *flags) {
    switch (level) {
    case EMB_SIMD_SCALAR: return 1;
    case EMB_SIMD_NEON: return det == EMB_SIMD_NEON;
    case EMB_SIMD_AVX2: return det != EMB_SIMD_SCALAR && det != EMB_SIMD_NEON;
    case EMB_SIMD_AVXVNNI: return det != EMB_SIMD_SCALAR && det != EMB_SIMD_NEON && flags && has_flag(flags, "avx_vnni");
    default: return (det == EMB_SIMD_AVX512 || det == EMB_SIMD_AVX512VNNI) && level <= det;
    }
}

/* Starts a child that sets EMBEDD_SIMD=value before its first call into the core and reports the
   level it then runs, and how many lines it wrote to stderr. Must be called before this process
   itself calls the core (the level is fixed at first use, and a forked child inherits that).
   Returns the level, or -1. */
static int child_level(const char *value, int *stderr_lines) {
    int out[2], errp[2];
    *stderr_lines = -1;
    if (pipe(out) != 0) return -1;
    if (pipe(errp) != 0) return -1;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        close(out[0]);
        close(errp[0]);
        dup2(errp[1], 2);
        setenv("EMBEDD_SIMD", value, 1);
        char buf[32];
        int len = snprintf(buf, sizeof buf, "%d\n", emb_simd_active());
        ssize_t w = write(out[1], buf, (size_t)len);
        _exit(w == len ? 0 : 1);
    }
    close(out[1]);
    close(errp[1]);
    char buf[64] = {0}, ebuf[1024] = {0};
    ssize_t r = read(out[0], buf, sizeof buf - 1);
    ssize_t er = 0, k;
    while (er < (ssize_t)sizeof ebuf - 1 && (k = read(errp[0], ebuf + er, sizeof ebuf - 1 - (size_t)er)) > 0) er += k;
    close(out[0]);
    close(errp[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (r <= 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return -1;
    int lines = 0;
    for (ssize_t i = 0; i < er; i++) lines += ebuf[i] == '\n';
    *stderr_lines = lines;
    return atoi(buf);
}

/* First use from many threads at once: everyone must see the same level and the same tables. */
typedef struct { int level; const emb_type_traits *traits; } first_use;

static void *first_use_thread(void *arg) {
    first_use *u = arg;
    u->traits = emb_get_type_traits(EMB_TYPE_Q6_K);
    u->level = emb_simd_active();
    return NULL;
}

int main(void) {
    /* children first, while this process has not touched the core */
    const char *names[] = {"scalar", "avx2", "avx512", "avx512vnni", "neon", "avxvnni", "sse9"};
    enum { BAD_NAME = 6 };
    int child[7], child_err[7];
    for (int i = 0; i < 7; i++) child[i] = child_level(names[i], &child_err[i]);

    /* then this process's own first use, from 8 threads racing */
    enum { NT = 8 };
    pthread_t th[NT];
    first_use use[NT];
    int started = 0;
    for (int i = 0; i < NT; i++) started += pthread_create(&th[i], NULL, first_use_thread, &use[i]) == 0;
    CHECK(started == NT, "threads started");
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    int same = 1;
    for (int i = 1; i < started; i++) same &= use[i].level == use[0].level && use[i].traits == use[0].traits;
    CHECK(same && use[0].traits != NULL, "concurrent first use agrees");

    int det = emb_simd_detect();
    char flags[8192];
    const int have_flags = cpuinfo_flags(flags, sizeof flags) == 0;
    if (have_flags) {
        int want = expected_level(flags);
        CHECK(det == want, "detected %s, /proc/cpuinfo says %s", emb_simd_name(det), emb_simd_name(want));
    } else {
        printf("test_cpu: /proc/cpuinfo unreadable, detection not cross-checked\n");
    }

    /* the parent was started without an override (make test-c does not set one) */
    const char *env = getenv("EMBEDD_SIMD");
    if (!env || !*env) CHECK(emb_simd_active() == det, "active %d == detected %d", emb_simd_active(), det);

    for (int level = 0; level < EMB_SIMD_N_LEVELS; level++) {
        const int runnable = expected_runnable(level, det, have_flags ? flags : NULL);
        if (!have_flags && level == EMB_SIMD_AVXVNNI) continue; /* nothing independent to compare with */
        CHECK(emb_simd_can_run(level) == runnable, "emb_simd_can_run(%s) = %d, want %d", names[level],
              emb_simd_can_run(level), runnable);
        int want = runnable ? level : det; /* unsupported: ignored, detected kept */
        CHECK(child[level] == want, "EMBEDD_SIMD=%s: child runs %s, want %s", names[level],
              emb_simd_name(child[level]), emb_simd_name(want));
        CHECK(child_err[level] == (runnable ? 0 : 1), "EMBEDD_SIMD=%s: %d stderr lines, want %d", names[level],
              child_err[level], runnable ? 0 : 1);
    }
    CHECK(child[BAD_NAME] == det && child_err[BAD_NAME] == 1, "EMBEDD_SIMD=sse9 ignored with one line: %d, %d lines",
          child[BAD_NAME], child_err[BAD_NAME]);

    /* emb_simd_set: runnable levels accepted and dispatched to, others refused unchanged */
    int before = emb_simd_active();
    CHECK(emb_simd_set(EMB_SIMD_SCALAR) == 0 && emb_simd_active() == EMB_SIMD_SCALAR, "set scalar");
    CHECK(emb_get_type_traits(EMB_TYPE_Q4_K) == emb_get_type_traits_level(EMB_TYPE_Q4_K, EMB_SIMD_SCALAR),
          "traits follow the active level");
    CHECK(emb_simd_set(det) == 0 && emb_simd_active() == det, "set detected");
    CHECK(emb_get_type_traits(EMB_TYPE_Q4_K) == emb_get_type_traits_level(EMB_TYPE_Q4_K, det),
          "traits follow the detected level");
    int refused = det == EMB_SIMD_NEON ? EMB_SIMD_AVX2 : EMB_SIMD_NEON;
    CHECK(emb_simd_set(refused) == -1 && emb_simd_active() == det, "%s refused", emb_simd_name(refused));
    if (det != EMB_SIMD_NEON && det < EMB_SIMD_AVX512VNNI)
        CHECK(emb_simd_set(det + 1) == -1 && emb_simd_active() == det, "level above detected refused");
    CHECK(emb_get_type_traits_level(EMB_TYPE_Q8_0, refused) == NULL, "no kernels for %s",
          emb_simd_name(refused));
    CHECK(emb_simd_set(-1) == -1 && emb_simd_set(EMB_SIMD_N_LEVELS) == -1 && emb_simd_set(1000) == -1 &&
              emb_simd_can_run(-1) == 0 && emb_simd_can_run(EMB_SIMD_N_LEVELS) == 0,
          "bad levels refused");
    CHECK(emb_simd_set(before) == 0, "restore");
    CHECK(strcmp(emb_simd_name(EMB_SIMD_AVX512VNNI), "avx512vnni") == 0 &&
              strcmp(emb_simd_name(EMB_SIMD_AVXVNNI), "avxvnni") == 0 &&
              strcmp(emb_simd_name(42), "unknown") == 0,
          "names");

    char extra[64];
    snprintf(extra, sizeof extra, " (detected %s)", emb_simd_name(det));
    return check_summary("test_cpu", extra);
}
