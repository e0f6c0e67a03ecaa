#include "imgcache.h"

#include "qimg.h"

#include <errno.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct entry {
    struct entry *next;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
    char format[32];
    char *backing;
    char path[];
};

static struct entry *head;
static unsigned count;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
enum { CACHE_MAX = 1024 };

static bool same_ts(struct timespec a, struct timespec b)
{
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

static bool matches(const struct entry *e, const struct stat *st)
{
    return e->dev == st->st_dev && e->ino == st->st_ino && e->size == st->st_size &&
           same_ts(e->mtime, st->st_mtim) && same_ts(e->ctime, st->st_ctim);
}

static int copy_out(const char *format, const char *backing, char *fmt, size_t fmtsz, char *out,
                    size_t outsz)
{
    if (strlen(backing) >= outsz || strlen(format) >= fmtsz)
        return -ENAMETOOLONG;
    strcpy(out, backing);
    strcpy(fmt, format);
    return 0;
}

/* Looks up under the lock; removes a stale entry for the same path. */
static int find(const char *path, const struct stat *st, char *fmt, size_t fmtsz, char *out,
                size_t outsz)
{
    int r = -ENOENT;
    pthread_mutex_lock(&lock);
    for (struct entry **pp = &head; *pp; pp = &(*pp)->next) {
        struct entry *e = *pp;
        if (strcmp(e->path, path) != 0)
            continue;
        if (matches(e, st)) {
            r = copy_out(e->format, e->backing, fmt, fmtsz, out, outsz);
        } else {
            *pp = e->next;
            free(e->backing);
            free(e);
            count--;
        }
        break;
    }
    pthread_mutex_unlock(&lock);
    return r;
}

static void drop_all_locked(void)
{
    while (head) {
        struct entry *n = head->next;
        free(head->backing);
        free(head);
        head = n;
    }
    count = 0;
}

static void insert(const char *path, const struct stat *st, const char *format, const char *backing)
{
    size_t len = strlen(path) + 1;
    struct entry *e = calloc(1, sizeof(*e) + len);
    if (!e)
        return;
    memcpy(e->path, path, len);
    e->dev = st->st_dev;
    e->ino = st->st_ino;
    e->size = st->st_size;
    e->mtime = st->st_mtim;
    e->ctime = st->st_ctim;
    snprintf(e->format, sizeof(e->format), "%s", format);
    e->backing = strdup(backing);
    if (!e->backing) {
        free(e);
        return;
    }
    pthread_mutex_lock(&lock);
    if (count >= CACHE_MAX)
        drop_all_locked();
    e->next = head;
    head = e;
    count++;
    pthread_mutex_unlock(&lock);
}

int imgcache_lookup(const char *qemu_img, const char *path, char *format, size_t formatsz,
                    char *backing, size_t backingsz, char *msg, size_t msgsz)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        snprintf(msg, msgsz, "%s", strerror(errno));
        return -errno;
    }
    int r = find(path, &st, format, formatsz, backing, backingsz);
    if (r != -ENOENT)
        return r;
    struct qimg_info info;
    r = qimg_info(qemu_img, path, &info, msg, msgsz);
    if (r < 0)
        return r;
    const char *b = info.backing_filename ? info.backing_filename : "";
    insert(path, &st, info.format, b);
    r = copy_out(info.format, b, format, formatsz, backing, backingsz);
    qimg_info_clear(&info);
    return r;
}

void imgcache_clear(void)
{
    pthread_mutex_lock(&lock);
    drop_all_locked();
    pthread_mutex_unlock(&lock);
}
