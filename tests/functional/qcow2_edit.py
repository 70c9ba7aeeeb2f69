"""Small struct-based editor for qcow2 images, used to craft bad input.

Everything here follows the qcow2 specification (QEMU's
docs/interop/qcow2.txt): all on-disk integers are big-endian, the header
starts with the fields below, header extensions follow the header
(at byte 72 for version 2, at header_length for version 3), and table
entries are 64-bit words whose host offset lives in bits 9..55.

The helpers patch files in place; they never validate what they write,
because their purpose is to make images that a careful reader must refuse.
"""
import struct

MAGIC = 0x514649FB

# name -> (byte offset, struct format) for the fixed header.
HEADER_FIELDS = {
    'magic': (0, '>I'),
    'version': (4, '>I'),
    'backing_file_offset': (8, '>Q'),
    'backing_file_size': (16, '>I'),
    'cluster_bits': (20, '>I'),
    'size': (24, '>Q'),
    'crypt_method': (32, '>I'),
    'l1_size': (36, '>I'),
    'l1_table_offset': (40, '>Q'),
    'refcount_table_offset': (48, '>Q'),
    'refcount_table_clusters': (56, '>I'),
    'nb_snapshots': (60, '>I'),
    'snapshots_offset': (64, '>Q'),
    # version 3 only
    'incompatible_features': (72, '>Q'),
    'compatible_features': (80, '>Q'),
    'autoclear_features': (88, '>Q'),
    'refcount_order': (96, '>I'),
    'header_length': (100, '>I'),
}

# Incompatible feature bits.
INCOMPAT_DIRTY = 1 << 0
INCOMPAT_CORRUPT = 1 << 1
INCOMPAT_DATA_FILE = 1 << 2
INCOMPAT_COMPRESSION = 1 << 3
INCOMPAT_EXTL2 = 1 << 4

# Header extension types.
EXT_END = 0x00000000
EXT_BACKING_FORMAT = 0xE2792ACA
EXT_FEATURE_TABLE = 0x6803F857
EXT_BITMAPS = 0x23852875
EXT_CRYPTO = 0x0537BE77
EXT_DATA_FILE = 0x44415441

# Table entry bits.
OFLAG_COPIED = 1 << 63
OFLAG_COMPRESSED = 1 << 62
OFLAG_ZERO = 1
OFFSET_MASK = 0x00FFFFFFFFFFFE00


def read_field(path, name):
    """Return the integer value of header field @name."""
    off, fmt = HEADER_FIELDS[name]
    with open(path, 'rb') as f:
        f.seek(off)
        return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]


def write_field(path, name, value):
    """Overwrite header field @name with @value (in place)."""
    off, fmt = HEADER_FIELDS[name]
    write_at(path, off, struct.pack(fmt, value))


def write_at(path, offset, data):
    """Overwrite raw bytes at @offset."""
    with open(path, 'r+b') as f:
        f.seek(offset)
        f.write(data)


def read_u64(path, offset):
    with open(path, 'rb') as f:
        f.seek(offset)
        return struct.unpack('>Q', f.read(8))[0]


def write_u64(path, offset, value):
    write_at(path, offset, struct.pack('>Q', value))


def truncate(path, length):
    with open(path, 'r+b') as f:
        f.truncate(length)


def cluster_size(path):
    return 1 << read_field(path, 'cluster_bits')


def l2_entries_per_table(path):
    return cluster_size(path) // 8


def l1_entry_offset(path, index):
    """File offset of L1 entry @index."""
    return read_field(path, 'l1_table_offset') + 8 * index


def l2_table_offset(path, l1_index):
    """Host offset of the L2 table for @l1_index (0 if unallocated)."""
    return read_u64(path, l1_entry_offset(path, l1_index)) & OFFSET_MASK


def l2_entry_offset(path, guest_offset):
    """File offset of the L2 entry mapping @guest_offset; the L2 table
    covering it must be allocated."""
    cs = cluster_size(path)
    per = l2_entries_per_table(path)
    cluster = guest_offset // cs
    l2 = l2_table_offset(path, cluster // per)
    if l2 == 0:
        raise ValueError('no L2 table covers guest offset %d' % guest_offset)
    return l2 + 8 * (cluster % per)


def data_cluster_offset(path, guest_offset):
    """Host offset of the data cluster backing @guest_offset (0 if none)."""
    return read_u64(path, l2_entry_offset(path, guest_offset)) & OFFSET_MASK


def refcount_bits(path):
    if read_field(path, 'version') < 3:
        return 16
    return 1 << read_field(path, 'refcount_order')


def refcount_entry(path, host_offset):
    """Return (file offset of the refcount block, index in it) for the
    cluster containing @host_offset. The refcount block must exist."""
    cs = cluster_size(path)
    bits = refcount_bits(path)
    per_block = cs * 8 // bits
    cluster = host_offset // cs
    rt = read_field(path, 'refcount_table_offset')
    block = read_u64(path, rt + 8 * (cluster // per_block)) & OFFSET_MASK
    if block == 0:
        raise ValueError('no refcount block for host offset %d' % host_offset)
    return block, cluster % per_block


def set_refcount(path, host_offset, value):
    """Set the refcount of the cluster at @host_offset (16-bit refcounts
    or 1-bit refcounts only, which is all the tests need)."""
    block, index = refcount_entry(path, host_offset)
    bits = refcount_bits(path)
    if bits == 16:
        write_at(path, block + 2 * index, struct.pack('>H', value))
    elif bits == 1:
        with open(path, 'r+b') as f:
            f.seek(block + index // 8)
            byte = f.read(1)[0]
            # Bit order: refcount i lives in bit (i % 8) of byte i / 8.
            mask = 1 << (index % 8)
            byte = (byte | mask) if value else (byte & ~mask)
            f.seek(block + index // 8)
            f.write(bytes([byte]))
    else:
        raise NotImplementedError('refcount_bits=%d' % bits)


def get_refcount(path, host_offset):
    block, index = refcount_entry(path, host_offset)
    bits = refcount_bits(path)
    with open(path, 'rb') as f:
        if bits == 16:
            f.seek(block + 2 * index)
            return struct.unpack('>H', f.read(2))[0]
        if bits == 1:
            f.seek(block + index // 8)
            return (f.read(1)[0] >> (index % 8)) & 1
    raise NotImplementedError('refcount_bits=%d' % bits)


def extensions_start(path):
    if read_field(path, 'version') < 3:
        return 72
    return read_field(path, 'header_length')


def list_extensions(path):
    """Return [(type, file offset of the extension header, length)]."""
    out = []
    off = extensions_start(path)
    cs = cluster_size(path)
    with open(path, 'rb') as f:
        while off + 8 <= cs:
            f.seek(off)
            etype, elen = struct.unpack('>II', f.read(8))
            if etype == EXT_END:
                break
            out.append((etype, off, elen))
            off += 8 + ((elen + 7) & ~7)
    return out


def remove_extension(path, ext_type):
    """Drop every header extension of @ext_type by shifting the following
    ones down (the area after the end marker is zeroed)."""
    start = extensions_start(path)
    kept = b''
    with open(path, 'rb') as f:
        for etype, off, elen in list_extensions(path):
            f.seek(off)
            blob = f.read(8 + ((elen + 7) & ~7))
            if etype != ext_type:
                kept += blob
    end = start
    for etype, off, elen in list_extensions(path):
        end = off + 8 + ((elen + 7) & ~7)
    pad = max(0, end - start - len(kept))
    write_at(path, start, kept + b'\0' * (8 + pad))
