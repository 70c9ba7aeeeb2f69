/* PLACEHOLDER: not written yet (owner fills this file). */
#include "qemu/osdep.h"
