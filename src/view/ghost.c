#include "config.h"

#include "view/ghost.h"

#include "util/names.h"
#include "view/view.h"
#include "view/vpath.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Few processes delete at once: a list is enough. */
#define MAX_ENTRIES 100000

struct gentry {
    pid_t pid;
    time_t when;
    mode_t type;
    char *path;
};

struct walker {
    pid_t pid;
    char vm[NAME_MAX_LEN + 1];
    unsigned opens;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct gentry *ents;
static size_t nents, capents;
static struct walker *walkers;
static size_t nwalkers, capwalkers;

static void expire(time_t now)
{
    size_t keep = 0;
    for (size_t i = 0; i < nents; i++) {
        if (now - ents[i].when > GHOST_SECONDS)
            free(ents[i].path);
        else
            ents[keep++] = ents[i];
    }
    nents = keep;
}

static int add_locked(pid_t pid, const char *path, mode_t type, time_t now)
{
    for (size_t i = 0; i < nents; i++) {
        if (ents[i].pid == pid && strcmp(ents[i].path, path) == 0) {
            ents[i].type = type;
            ents[i].when = now;
            return 0;
        }
    }
    if (nents == MAX_ENTRIES)
        return -ENOSPC;
    if (nents == capents) {
        size_t cap = capents ? 2 * capents : 64;
        struct gentry *ne = realloc(ents, cap * sizeof(*ne));
        if (!ne)
            return -ENOMEM;
        ents = ne;
        capents = cap;
    }
    char *p = strdup(path);
    if (!p)
        return -ENOMEM;
    ents[nents++] = (struct gentry){ pid, now, type, p };
    return 0;
}

int ghost_add(pid_t pid, const char *path, mode_t type)
{
    if (pid <= 0)
        return 0;
    time_t now = time(NULL);
    pthread_mutex_lock(&lock);
    expire(now);
    int r = add_locked(pid, path, type, now);
    pthread_mutex_unlock(&lock);
    return r;
}

int ghost_stat(pid_t pid, const char *path, mode_t *type)
{
    int r = -ENOENT;
    time_t now = time(NULL);
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < nents; i++) {
        if (ents[i].pid == pid && now - ents[i].when <= GHOST_SECONDS &&
            strcmp(ents[i].path, path) == 0) {
            *type = ents[i].type;
            r = 0;
            break;
        }
    }
    pthread_mutex_unlock(&lock);
    return r;
}

/* The name of path directly inside dir, or NULL. */
static const char *child_of(const char *path, const char *dir)
{
    size_t dl = strlen(dir);
    if (strncmp(path, dir, dl) != 0 || path[dl] != '/' || !path[dl + 1] ||
        strchr(path + dl + 1, '/'))
        return NULL;
    return path + dl + 1;
}

int ghost_list(pid_t pid, const char *dir, int (*fill)(void *ctx, const char *name, mode_t type),
               void *ctx)
{
    /* Names copied out first: fill runs without the lock. */
    char **names = NULL;
    mode_t *types = NULL;
    size_t n = 0;
    time_t now = time(NULL);
    pthread_mutex_lock(&lock);
    names = calloc(nents ? nents : 1, sizeof(*names));
    types = calloc(nents ? nents : 1, sizeof(*types));
    for (size_t i = 0; names && types && i < nents; i++) {
        const char *c = ents[i].pid == pid && now - ents[i].when <= GHOST_SECONDS
                            ? child_of(ents[i].path, dir)
                            : NULL;
        if (c && (names[n] = strdup(c)) != NULL)
            types[n++] = ents[i].type;
    }
    pthread_mutex_unlock(&lock);
    int r = names && types ? 0 : -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (r == 0 && fill(ctx, names[i], types[i]) != 0)
            r = 1;
        free(names[i]);
    }
    free(names);
    free(types);
    return r < 0 ? r : 0;
}

int ghost_remove(pid_t pid, const char *path)
{
    int r = -ENOENT;
    pthread_mutex_lock(&lock);
    size_t at = nents;
    for (size_t i = 0; i < nents; i++) {
        if (ents[i].pid != pid)
            continue;
        if (strcmp(ents[i].path, path) == 0)
            at = i;
        else if (child_of(ents[i].path, path))
            r = -ENOTEMPTY;
    }
    if (at < nents && r != -ENOTEMPTY) {
        free(ents[at].path);
        ents[at] = ents[--nents];
        r = 0;
    } else if (at == nents) {
        r = -ENOENT;
    }
    pthread_mutex_unlock(&lock);
    return r;
}

void ghost_forget_under(pid_t pid, const char *path)
{
    size_t pl = strlen(path);
    pthread_mutex_lock(&lock);
    size_t keep = 0;
    for (size_t i = 0; i < nents; i++) {
        const char *p = ents[i].path;
        bool under = strncmp(p, path, pl) == 0 && (p[pl] == '\0' || p[pl] == '/');
        if (ents[i].pid == pid && under)
            free(ents[i].path);
        else
            ents[keep++] = ents[i];
    }
    nents = keep;
    pthread_mutex_unlock(&lock);
}

void ghost_walker_open(pid_t pid, const char *vm)
{
    if (pid <= 0)
        return;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < nwalkers; i++) {
        if (walkers[i].pid == pid && strcmp(walkers[i].vm, vm) == 0) {
            walkers[i].opens++;
            pthread_mutex_unlock(&lock);
            return;
        }
    }
    if (nwalkers == capwalkers) {
        size_t cap = capwalkers ? 2 * capwalkers : 16;
        struct walker *nw = realloc(walkers, cap * sizeof(*nw));
        if (!nw) {
            pthread_mutex_unlock(&lock);
            return;
        }
        walkers = nw;
        capwalkers = cap;
    }
    walkers[nwalkers] = (struct walker){ .pid = pid, .opens = 1 };
    snprintf(walkers[nwalkers].vm, sizeof(walkers[nwalkers].vm), "%s", vm);
    nwalkers++;
    pthread_mutex_unlock(&lock);
}

void ghost_walker_close(pid_t pid, const char *vm)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < nwalkers; i++) {
        if (walkers[i].pid == pid && strcmp(walkers[i].vm, vm) == 0) {
            if (--walkers[i].opens == 0)
                walkers[i] = walkers[--nwalkers];
            break;
        }
    }
    pthread_mutex_unlock(&lock);
}

bool ghost_is_walker(pid_t pid, const char *vm)
{
    bool hit = false;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < nwalkers && !hit; i++)
        hit = walkers[i].pid == pid && strcmp(walkers[i].vm, vm) == 0;
    pthread_mutex_unlock(&lock);
    return hit;
}

bool ghost_vm_walked(const char *vm)
{
    bool hit = false;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < nwalkers && !hit; i++)
        hit = strcmp(walkers[i].vm, vm) == 0;
    pthread_mutex_unlock(&lock);
    return hit;
}

void ghost_reset(void)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < nents; i++)
        free(ents[i].path);
    nents = 0;
    nwalkers = 0;
    pthread_mutex_unlock(&lock);
}
