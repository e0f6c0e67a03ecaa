/* gateshim: preloaded into the qemu-img that qimggate.sh lets run, it
 * stops that qemu-img (SIGSTOP to itself) right after it printed and
 * flushed the first progress figure at or past each threshold the gate
 * was given.
 *
 * The relay that reads qemu-img's output used to send the SIGSTOP when it
 * read such a figure; a copy from a warm cache can finish between the
 * print and the signal, most often on a loaded machine, and the test then
 * saw "eof" instead of a merge in the middle. Stopping in the process
 * that prints leaves no such window: the stop is part of the print.
 *
 * qemu-img prints its figures as util/qemu-progress.c does:
 * printf("    (%3.2f/100%%)\r") then fflush(stdout). Built with
 * _FORTIFY_SOURCE, the printf is __printf_chk; both are caught. The
 * thresholds come from the file named by VMSTOREFS_GATE_STOPS (the
 * relay reads the same file), percent figures separated by blanks. */
/* printf is defined here: not as fortify's inline wrapper. */
#undef _FORTIFY_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STOPS 16

static double stops[MAX_STOPS];
static int nstops, next_stop;
static int stop_after_flush;

/* glibc's, which no header declares. */
int __printf_chk(int flag, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

__attribute__((constructor)) static void load_stops(void)
{
    const char *path = getenv("VMSTOREFS_GATE_STOPS");
    FILE *f = path ? fopen(path, "re") : NULL;
    if (!f)
        return;
    while (nstops < MAX_STOPS && fscanf(f, "%lf", &stops[nstops]) == 1)
        nstops++;
    fclose(f);
    /* Not passed on to what this qemu-img might run. */
    unsetenv("LD_PRELOAD");
}

/* A figure "(F/100%)" in what is about to be printed: is it past the
 * next threshold? Then stop once it is flushed. */
__attribute__((format(printf, 1, 0))) static void note(const char *fmt, va_list ap)
{
    char line[128];
    const char *p;
    double fig;
    if (next_stop >= nstops || !strstr(fmt, "/100%%"))
        return;
    vsnprintf(line, sizeof line, fmt, ap);
    if (!(p = strchr(line, '(')) || sscanf(p, "(%lf/100%%)", &fig) != 1 || fig < stops[next_stop])
        return;
    while (next_stop < nstops && fig >= stops[next_stop])
        next_stop++;
    stop_after_flush = 1;
}

/* Notes the figure, then prints as printf would. */
__attribute__((format(printf, 1, 0))) static int print_noted(const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    note(fmt, ap2);
    va_end(ap2);
    return vprintf(fmt, ap);
}

int __printf_chk(int flag, const char *fmt, ...)
{
    va_list ap;
    int n;
    (void)flag;
    va_start(ap, fmt);
    n = print_noted(fmt, ap);
    va_end(ap);
    return n;
}

int printf(const char *fmt, ...)
{
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = print_noted(fmt, ap);
    va_end(ap);
    return n;
}

int fflush(FILE *f)
{
    static int (*real_fflush)(FILE *);
    int r;
    if (!real_fflush)
        *(void **)&real_fflush = dlsym(RTLD_NEXT, "fflush");
    r = real_fflush(f);
    if (stop_after_flush && (f == stdout || !f)) {
        stop_after_flush = 0;
        raise(SIGSTOP);
    }
    return r;
}
