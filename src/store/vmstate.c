#include "config.h"

#include "store/vmstate.h"

#include "util/names.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct writer {
    char dev[DEV_MAX_LEN + 1];
    int count;
};

struct link {
    char name[NAME_MAX_LEN + 1];
    char target[2 * NAME_MAX_LEN + 16];
    time_t made;
};

struct vm {
    struct vm *next;
    char name[NAME_MAX_LEN + 1];
    struct writer *writers;
    size_t nwriters;
    struct link links[VMSTATE_MAX_LINKS];
    size_t nlinks;
    bool current_hidden;
    int ops; /* operations running (vmstate_op_begin) */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct vm *vms;

/* Called with the lock held; NULL when create is false and vm is unknown
 * (or out of memory). */
static struct vm *find(const char *name, bool create)
{
    for (struct vm *v = vms; v; v = v->next)
        if (strcmp(v->name, name) == 0)
            return v;
    if (!create || strlen(name) > NAME_MAX_LEN)
        return NULL;
    struct vm *v = calloc(1, sizeof(*v));
    if (!v)
        return NULL;
    strcpy(v->name, name);
    v->next = vms;
    vms = v;
    return v;
}

static void expire_links(struct vm *v)
{
    time_t now = time(NULL);
    for (size_t i = 0; i < v->nlinks;) {
        if (now - v->links[i].made > VMSTATE_LINK_TTL)
            v->links[i] = v->links[--v->nlinks];
        else
            i++;
    }
}

int vmstate_writer_add(const char *vm, const char *dev)
{
    int r = 0;
    pthread_mutex_lock(&lock);
    struct vm *v = find(vm, true);
    if (v && v->ops > 0) {
        r = -EBUSY;
    } else if (!v) {
        r = -ENOMEM;
    } else {
        size_t i;
        for (i = 0; i < v->nwriters && strcmp(v->writers[i].dev, dev) != 0; i++)
            ;
        if (i == v->nwriters) {
            struct writer *w = realloc(v->writers, (i + 1) * sizeof(*w));
            if (w) {
                v->writers = w;
                snprintf(w[i].dev, sizeof(w[i].dev), "%s", dev);
                w[i].count = 0;
                v->nwriters++;
            }
        }
        if (i < v->nwriters)
            v->writers[i].count++;
        else
            r = -ENOMEM;
    }
    pthread_mutex_unlock(&lock);
    return r;
}

void vmstate_op_begin(const char *vm)
{
    pthread_mutex_lock(&lock);
    struct vm *v = find(vm, true);
    if (v)
        v->ops++;
    pthread_mutex_unlock(&lock);
}

void vmstate_op_end(const char *vm)
{
    pthread_mutex_lock(&lock);
    struct vm *v = find(vm, false);
    if (v && v->ops > 0)
        v->ops--;
    pthread_mutex_unlock(&lock);
}

void vmstate_writer_remove(const char *vm, const char *dev)
{
    pthread_mutex_lock(&lock);
    struct vm *v = find(vm, false);
    for (size_t i = 0; v && i < v->nwriters; i++) {
        if (strcmp(v->writers[i].dev, dev) == 0) {
            if (--v->writers[i].count <= 0)
                v->writers[i] = v->writers[--v->nwriters];
            break;
        }
    }
    pthread_mutex_unlock(&lock);
}

int vmstate_writers(const char *vm, const char *dev)
{
    int n = 0;
    pthread_mutex_lock(&lock);
    struct vm *v = find(vm, false);
    for (size_t i = 0; v && i < v->nwriters; i++)
        if (!dev || strcmp(v->writers[i].dev, dev) == 0)
            n += v->writers[i].count;
    pthread_mutex_unlock(&lock);
    return n;
}

static struct link *find_link(struct vm *v, const char *name)
{
    for (size_t i = 0; v && i < v->nlinks; i++)
        if (strcmp(v->links[i].name, name) == 0)
            return &v->links[i];
    return NULL;
}

int vmstate_link_add(const char *vm, const char *name, const char *target)
{
    if (strlen(name) > NAME_MAX_LEN || strlen(target) >= sizeof(((struct link *)0)->target))
        return -ENAMETOOLONG;
    int r = 0;
    pthread_mutex_lock(&lock);
    struct vm *v = find(vm, true);
    if (!v) {
        r = -ENOMEM;
    } else {
        expire_links(v);
        if (find_link(v, name)) {
            r = -EEXIST;
        } else {
            /* Full: the oldest link goes (an ln that never renamed it). */
            if (v->nlinks == VMSTATE_MAX_LINKS) {
                size_t oldest = 0;
                for (size_t i = 1; i < v->nlinks; i++)
                    if (v->links[i].made < v->links[oldest].made)
                        oldest = i;
                v->links[oldest] = v->links[--v->nlinks];
            }
            struct link *l = &v->links[v->nlinks++];
            strcpy(l->name, name);
            strcpy(l->target, target);
            l->made = time(NULL);
        }
    }
    pthread_mutex_unlock(&lock);
    return r;
}

int vmstate_link_get(const char *vm, const char *name, char *out, size_t outsz)
{
    int r = -ENOENT;
    pthread_mutex_lock(&lock);
    struct vm *v = find(vm, false);
    if (v)
        expire_links(v);
    struct link *l = find_link(v, name);
    if (l)
        r = (size_t)snprintf(out, outsz, "%s", l->target) < outsz ? 0 : -ENAMETOOLONG;
    pthread_mutex_unlock(&lock);
    return r;
}

int vmstate_link_remove(const char *vm, const char *name)
{
    int r = -ENOENT;
    pthread_mutex_lock(&lock);
    struct vm *v = find(vm, false);
    struct link *l = find_link(v, name);
    if (l) {
        *l = v->links[--v->nlinks];
        r = 0;
    }
    pthread_mutex_unlock(&lock);
    return r;
}

void vmstate_set_current_hidden(const char *vm, bool hidden)
{
    pthread_mutex_lock(&lock);
    struct vm *v = find(vm, hidden);
    if (v)
        v->current_hidden = hidden;
    pthread_mutex_unlock(&lock);
}

bool vmstate_current_hidden(const char *vm)
{
    pthread_mutex_lock(&lock);
    struct vm *v = find(vm, false);
    bool h = v && v->current_hidden;
    pthread_mutex_unlock(&lock);
    return h;
}

void vmstate_changed(const char *vm)
{
    pthread_mutex_lock(&lock);
    struct vm *v = find(vm, true);
    if (v)
        v->current_hidden = false;
    pthread_mutex_unlock(&lock);
}

void vmstate_forget(const char *vm)
{
    pthread_mutex_lock(&lock);
    struct vm *v = find(vm, false);
    if (v) {
        v->nlinks = 0;
        v->current_hidden = false;
    }
    pthread_mutex_unlock(&lock);
}

void vmstate_reset(void)
{
    pthread_mutex_lock(&lock);
    while (vms) {
        struct vm *v = vms;
        vms = v->next;
        free(v->writers);
        free(v);
    }
    pthread_mutex_unlock(&lock);
}
