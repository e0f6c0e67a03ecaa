#include "config.h"

#include "store/writer.h"

#include "store/vmlock.h"
#include "store/vmstate.h"
#include "util/log.h"

#include <errno.h>
#include <unistd.h>

int writer_begin(const struct store *s, const char *vm, const char *dev, const char *path,
                 int *mark)
{
    int r = vmstate_writer_add(vm, dev);
    if (r < 0) {
        log_refusal("open", path, "a snapshot operation on this VM is running");
        return r;
    }
    *mark = vmlock_writer_mark(s, vm, dev);
    if (*mark == -EBUSY) {
        vmstate_writer_remove(vm, dev);
        log_refusal("open", path, "a snapshot operation holds this image");
        return -EBUSY;
    }
    return 0;
}

void writer_end(const char *vm, const char *dev, int mark)
{
    if (mark >= 0)
        close(mark);
    vmstate_writer_remove(vm, dev);
}
