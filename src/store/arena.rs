//! The table's slab arena: where entry blocks live. It owns one reserved
//! range of address space per table, carved into 16 KiB pages, each page
//! into equal chunks of one size class; it knows nothing of keys, hashes or
//! slots (the table, [`super::table`], moves chunks when asked to compact).
//!
//! * **Addresses are 32-bit offsets** in 4-byte units from the range's base
//!   (16 GiB addressable per table), so a table slot holds an offset instead
//!   of a pointer. Page 0 is never handed out: offset 0 means "no chunk".
//! * **Size classes**: every multiple of 4 bytes up to 256 B (no rounding
//!   beyond 3 bytes, and no allocator header), then 32 classes per doubling
//!   up to 16 KiB (at most 1/32 ≈ 3% rounding). Larger blocks take a run of
//!   whole pages.
//! * **Free chunks** go on their page's own free list; a class keeps the
//!   pages with a free chunk. A page whose last chunk is freed goes back to
//!   the range's free pages *and to the kernel* (`madvise(MADV_DONTNEED)`),
//!   so [`Arena::held_bytes`] — the pages in use — is what the process
//!   holds for entries (RSS), and what `used_memory` counts. The exception:
//!   up to 8 emptied pages (128 KiB) stay mapped as spares for the next new
//!   pages, since under eviction pages empty and are taken again all the
//!   time, and the kernel's round trip (page faults and zeroing) cost a
//!   tenth of the server's time under SIEVE.
//! * **Bounded fragmentation.** Random frees leave chunks free in many pages
//!   of a class without emptying any. When a class's free chunks reach two
//!   pages' worth, [`Arena::free`] names the emptiest of a few of its partial
//!   pages and the table *evacuates* it: moves its live chunks into the
//!   class's other free chunks (which are enough, by that count), so the
//!   page empties and is returned. A class therefore holds at most about two
//!   pages of free chunks beyond its live ones, and each evacuation, which
//!   moves at most a page's chunks, needs a page's worth of frees first (at
//!   most one move per free, amortised).
//!
//! * **SIEVE's order** ([`Arena::set_ordered`], when the table's policy is
//!   SIEVE). SIEVE evicts in insertion order, keeps a key it passes in
//!   place, and puts new keys at the newest end, so new keys are looked at
//!   before the ones it kept ("quick demotion"). The arena gives it that
//!   order without a queue:
//!   - the pages in use form a ring, oldest first (8 B per 16 KiB page);
//!   - each class has a *head*, its newest page: every new block of the
//!     class goes there (never into an older page's free chunk, which would
//!     put a new key where the hand has just been: CLOCK, not SIEVE), and a
//!     full head is followed by a fresh page at the ring's newest end;
//!   - the hand ([`Arena::hand_next`]) walks the live blocks page by page,
//!     oldest first, wrapping at the newest; the table moves each block it
//!     keeps into its class's *fill*, a page the hand has already passed,
//!     while that has room ([`Arena::alloc_in_fill`]), so the pages the hand
//!     passes empty and come back, and the kept keys stay in order, behind
//!     it.
//!
//!   Evacuations still bound fragmentation from deletes, one page later (the
//!   head, the fill and the hand's page hold free chunks no evacuation
//!   takes), never emptying the hand's page or the fill.
//!
//! The range is reserved `PROT_NONE` on the first allocation (an empty table
//! costs no address space) and made writable in 2 MiB steps as the high-water
//! mark passes them, so memory is committed only as it is used.
//!
//! The arena marks a free chunk by writing [`FREE_MARK`] in its first byte;
//! a live chunk's first byte must never be that value (the table's entry
//! headers never are), which is how an evacuation tells live chunks from
//! free ones.

use std::collections::BTreeMap;
use std::ptr;

/// Bytes of a page (log2).
pub const PAGE_SHIFT: u32 = 14;
/// Bytes of a page.
pub const PAGE: usize = 1 << PAGE_SHIFT;
/// Offsets count 4-byte units.
const UNIT_SHIFT: u32 = 2;
/// Largest size served by a size class; bigger blocks take whole pages.
pub const MAX_CLASS_SIZE: usize = PAGE;
/// Number of size classes.
const NR_CLASSES: usize = 64 + 6 * 32;
/// The free-chunk mark: a free chunk's first byte (no live entry's header
/// starts with it).
pub const FREE_MARK: u8 = 0x7F;
/// Address space reserved per table, at most (2^32 offsets of 4 bytes).
const MAX_RESERVE: usize = 1 << 34;
/// The writable part of the range grows by this much at a time.
const COMMIT_STEP: usize = 2 << 20;
/// Emptied pages an arena keeps, still mapped, for its next new pages (see
/// [`Arena::release_page`]).
const SPARE_PAGES: usize = 8;
/// Partial pages looked at to pick the one to evacuate.
const EVACUATION_CANDIDATES: usize = 8;

/// `page.class` of a page that is free.
const PAGE_FREE: u16 = u16::MAX;
/// `page.class` of the first page of a run holding one large block.
const PAGE_LARGE: u16 = u16::MAX - 1;
/// `page.class` of the other pages of a large run.
const PAGE_LARGE_TAIL: u16 = u16::MAX - 2;
/// `page.partial` of a page that is in no partial list.
const NOT_PARTIAL: u32 = u32::MAX;

/// The size class serving a block of `size` bytes (`size <= MAX_CLASS_SIZE`).
#[inline]
pub fn class_of(size: usize) -> usize {
    if size <= 256 {
        return size.max(1).div_ceil(4) - 1;
    }
    let lg = (usize::BITS - 1 - (size - 1).leading_zeros()) as usize; // size in (2^lg, 2^(lg+1)]
    let step = 1usize << (lg - 5);
    64 + (lg - 8) * 32 + (size - (1 << lg)).div_ceil(step) - 1
}

/// The chunk size of class `c`.
#[inline]
pub fn class_size(c: usize) -> usize {
    if c < 64 {
        return (c + 1) * 4;
    }
    let j = c - 64;
    let lg = 8 + j / 32;
    (1 << lg) + (j % 32 + 1) * (1 << (lg - 5))
}

/// Bytes a block of `size` takes in the arena: its class's chunk, or whole
/// pages for a large block.
#[inline]
pub fn charge(size: usize) -> usize {
    if size <= MAX_CLASS_SIZE {
        class_size(class_of(size))
    } else {
        size.div_ceil(PAGE) * PAGE
    }
}

#[derive(Clone, Copy)]
struct PageMeta {
    /// Size class, or `PAGE_FREE` / `PAGE_LARGE` / `PAGE_LARGE_TAIL`.
    class: u16,
    /// Live chunks.
    live: u16,
    /// Chunks carved so far (the rest of the page was never used).
    bump: u16,
    /// First free chunk + 1 (0: none); each free chunk holds the next.
    free_head: u16,
    /// Index in the class's partial list, or `NOT_PARTIAL`. For a large
    /// run's first page: the run's length in pages.
    partial: u32,
}

const FREE_PAGE: PageMeta = PageMeta {
    class: PAGE_FREE,
    live: 0,
    bump: 0,
    free_head: 0,
    partial: NOT_PARTIAL,
};

struct Class {
    size: u32,
    /// Chunks per page.
    per_page: u16,
    /// Pages of this class with at least one free chunk.
    partial: Vec<u32>,
    /// Free chunks over the class's pages (carved or not).
    free_chunks: usize,
}

/// The arena (see the module docs). Not `Send`: it belongs to one table.
pub struct Arena {
    /// The mapping as `mmap` returned it, and its length (for `munmap`).
    mapping: (*mut u8, usize),
    /// The first page: the mapping's first 2 MiB boundary.
    base: *mut u8,
    /// Pages in the reserved range.
    reserved_pages: usize,
    /// Bytes of the range made writable.
    committed: usize,
    /// One past the highest page ever handed out.
    hwm: usize,
    pages: Vec<PageMeta>,
    /// Free page runs below `hwm`: start → length.
    free_runs: BTreeMap<u32, u32>,
    classes: Vec<Class>,
    /// Pages owned by classes or large runs.
    pages_in_use: usize,
    /// An evacuation is running (frees do not start another).
    evacuating: bool,
    /// SIEVE's page order and hand, when the table's policy is SIEVE
    /// ([`Arena::set_ordered`]).
    order: Option<Box<Order>>,
    /// Emptied pages kept mapped for the next new page (at most
    /// [`SPARE_PAGES`]); not in use, so not in [`Arena::held_bytes`].
    spare: Vec<u32>,
}

/// The pages in the order SIEVE's hand walks them (see the module docs):
/// a ring of the pages in use, oldest first, with each class's *head* (the
/// page its new blocks go to) and *fill* (where the hand moves the blocks
/// it keeps).
struct Order {
    /// `[older, newer]` neighbours of each page in the ring. Page 0, never
    /// handed out, is the ring's seam: `links[0][NEWER]` is the oldest page,
    /// `links[0][OLDER]` the newest.
    links: Vec<[u32; 2]>,
    /// Per class: the page new blocks go to (0: none yet).
    head: Vec<u32>,
    /// Per class: a page the hand has passed, with free chunks, that takes
    /// the blocks it keeps from the pages after it (0: none).
    fill: Vec<u32>,
    /// The page under the hand (0: at the seam, it wraps next) and the next
    /// chunk it looks at there.
    hand: u32,
    hand_idx: u32,
}

const OLDER: usize = 0;
const NEWER: usize = 1;

/// What [`Arena::hand_next`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hand {
    /// A live block, at this offset; the hand is past it.
    Block(u32),
    /// The hand left this page for the next one.
    PageDone(usize),
    /// No page is in use.
    Empty,
}

impl Order {
    fn new(pages: usize) -> Order {
        Order {
            links: vec![[0, 0]; pages],
            head: vec![0; NR_CLASSES],
            fill: vec![0; NR_CLASSES],
            hand: 0,
            hand_idx: 0,
        }
    }

    /// Puts page `p` at the newest end of the ring.
    fn link_newest(&mut self, p: usize) {
        if self.links.len() <= p {
            self.links.resize(p + 1, [0, 0]);
        }
        let newest = self.links[0][OLDER];
        self.links[p] = [newest, 0];
        self.links[newest as usize][NEWER] = p as u32;
        self.links[0][OLDER] = p as u32;
    }

    /// Takes page `p` (of class `class`, or a large run's first page) out
    /// of the ring; a hand on it moves to the next page.
    fn unlink(&mut self, p: usize, class: u16) {
        let [older, newer] = self.links[p];
        self.links[older as usize][NEWER] = newer;
        self.links[newer as usize][OLDER] = older;
        if self.hand == p as u32 {
            self.hand = newer;
            self.hand_idx = 0;
        }
        if (class as usize) < NR_CLASSES {
            let c = class as usize;
            if self.head[c] == p as u32 {
                self.head[c] = 0;
            }
            if self.fill[c] == p as u32 {
                self.fill[c] = 0;
            }
        }
    }
}

impl Default for Arena {
    fn default() -> Self {
        Arena::new()
    }
}

impl Arena {
    /// An empty arena (no address space reserved yet).
    pub fn new() -> Arena {
        let classes = (0..NR_CLASSES)
            .map(|c| {
                let size = class_size(c);
                Class {
                    size: size as u32,
                    per_page: (PAGE / size) as u16,
                    partial: Vec::new(),
                    free_chunks: 0,
                }
            })
            .collect();
        Arena {
            mapping: (ptr::null_mut(), 0),
            base: ptr::null_mut(),
            reserved_pages: 0,
            committed: 0,
            hwm: 1,
            pages: vec![FREE_PAGE],
            free_runs: BTreeMap::new(),
            classes,
            pages_in_use: 0,
            evacuating: false,
            order: None,
            spare: Vec::new(),
        }
    }

    /// Keeps the pages in SIEVE's order (`true`: new blocks of a class go
    /// to its newest page, and [`Arena::hand_next`] walks the pages oldest
    /// first), or stops (`false`). Turned on with blocks present, the ring
    /// starts in address order.
    pub fn set_ordered(&mut self, on: bool) {
        match (on, self.order.is_some()) {
            (true, false) => {
                let mut o = Order::new(self.pages.len());
                for (p, m) in self.pages.iter().enumerate().skip(1) {
                    if m.class != PAGE_FREE && m.class != PAGE_LARGE_TAIL {
                        o.link_newest(p);
                    }
                }
                self.order = Some(Box::new(o));
            }
            (false, true) => {
                let o = self.order.take().expect("ordered");
                // The heads join their classes' partial lists again.
                for (c, &h) in o.head.iter().enumerate() {
                    let h = h as usize;
                    if h != 0 && self.has_free(h) && self.pages[h].partial == NOT_PARTIAL {
                        self.push_partial(c, h);
                    }
                }
            }
            _ => {}
        }
    }

    /// True when the pages are kept in SIEVE's order.
    pub fn is_ordered(&self) -> bool {
        self.order.is_some()
    }

    /// Bytes the page order takes (8 per page in the range; 0 unordered).
    pub fn order_bytes(&self) -> usize {
        self.order.as_ref().map_or(0, |o| {
            o.links.capacity() * 8 + (o.head.capacity() + o.fill.capacity()) * 4
        })
    }

    /// True when class page `p` has a chunk free (or never carved).
    #[inline]
    fn has_free(&self, p: usize) -> bool {
        let m = self.pages[p];
        m.free_head != 0 || m.bump < self.classes[m.class as usize].per_page
    }

    /// The page new blocks of class `c` go to when the pages are ordered:
    /// its head, while that has a free chunk.
    #[inline]
    fn head_with_room(&self, c: usize) -> Option<usize> {
        let h = self.order.as_ref()?.head[c] as usize;
        (h != 0 && self.has_free(h)).then_some(h)
    }

    /// The page with a free chunk a new block of class `c` goes to: the
    /// head when ordered, else the last partial page; `None` when the class
    /// needs a new page.
    #[inline]
    fn page_for_new(&self, c: usize) -> Option<usize> {
        if self.order.is_some() {
            self.head_with_room(c)
        } else {
            self.classes[c].partial.last().map(|&p| p as usize)
        }
    }

    /// SIEVE's hand, one step: the next live block from the hand on, or the
    /// page it just left, in ring order (wrapping from the newest page to
    /// the oldest). Ordered arenas only.
    pub fn hand_next(&mut self) -> Hand {
        let o = self.order.as_mut().expect("an ordered arena");
        if o.hand == 0 {
            o.hand = o.links[0][NEWER];
            o.hand_idx = 0;
            if o.hand == 0 {
                return Hand::Empty;
            }
        }
        let p = o.hand as usize;
        let m = self.pages[p];
        let first = (p << PAGE_SHIFT) >> UNIT_SHIFT;
        if m.class == PAGE_LARGE {
            if o.hand_idx == 0 {
                o.hand_idx = 1;
                return Hand::Block(first as u32);
            }
        } else {
            let size = self.classes[m.class as usize].size as usize;
            while o.hand_idx < m.bump as u32 {
                let i = o.hand_idx as usize;
                o.hand_idx += 1;
                let off = (first + ((i * size) >> UNIT_SHIFT)) as u32;
                // SAFETY: a carved chunk of a committed page: its first byte
                // is the free mark or a live block's.
                if unsafe { *self.base.wrapping_add((off as usize) << UNIT_SHIFT) } != FREE_MARK {
                    return Hand::Block(off);
                }
            }
        }
        o.hand = o.links[p][NEWER];
        o.hand_idx = 0;
        Hand::PageDone(p)
    }

    /// After the hand left page `p`: a page of a class with free chunks
    /// becomes its class's fill, unless that still has room or `p` is the
    /// class's head.
    pub fn hand_left(&mut self, p: usize) {
        let m = self.pages[p];
        if m.class as usize >= NR_CLASSES || !self.has_free(p) {
            return;
        }
        let c = m.class as usize;
        let o = self.order.as_ref().expect("an ordered arena");
        let (fill, head) = (o.fill[c] as usize, o.head[c] as usize);
        if (fill != 0 && fill != p && self.has_free(fill)) || head == p {
            return;
        }
        self.order.as_mut().expect("ordered").fill[c] = p as u32;
    }

    /// A chunk of the class fill for the block at `off`, which the hand
    /// keeps: `None` when the fill has no room or is the block's own page
    /// (the block then stays where it is).
    pub fn alloc_in_fill(&mut self, off: u32) -> Option<u32> {
        let page = (off >> (PAGE_SHIFT - UNIT_SHIFT)) as usize;
        let c = self.pages[page].class as usize;
        if c >= NR_CLASSES {
            return None;
        }
        let fill = self.order.as_ref()?.fill[c] as usize;
        if fill == 0 || fill == page || !self.has_free(fill) {
            return None;
        }
        Some(self.alloc_at(c, fill))
    }

    /// Pages in use.
    #[inline]
    pub fn pages_in_use(&self) -> usize {
        self.pages_in_use
    }

    /// Bytes of the pages in use: what the arena holds from the kernel.
    #[inline]
    pub fn held_bytes(&self) -> usize {
        self.pages_in_use * PAGE
    }

    /// The address of the chunk at `off`.
    #[inline(always)]
    pub fn ptr(&self, off: u32) -> *mut u8 {
        self.base.wrapping_add((off as usize) << UNIT_SHIFT)
    }

    /// Bytes the arena would grow by to allocate a block of `size` now.
    #[inline]
    pub fn growth(&self, size: usize) -> usize {
        if size > MAX_CLASS_SIZE {
            return charge(size);
        }
        if self.page_for_new(class_of(size)).is_some() {
            0
        } else {
            PAGE
        }
    }

    /// The bytes the chunk at `off` spans (its class size, or its run).
    #[inline]
    pub fn chunk_bytes(&self, off: u32) -> usize {
        let m = self.pages[(off >> (PAGE_SHIFT - UNIT_SHIFT)) as usize];
        match m.class {
            PAGE_LARGE => m.partial as usize * PAGE,
            c => self.classes[c as usize].size as usize,
        }
    }

    /// The chunk size of the page holding `off`, a chunk of one of the
    /// classes up to 256 B (every 4 bytes: the size follows from the class
    /// number, one load, no bounds check, so an unused result costs nothing).
    ///
    /// # Safety
    /// `off` is a live chunk of such a class.
    #[inline(always)]
    pub unsafe fn small_chunk_bytes(&self, off: u32) -> usize {
        let page = (off >> (PAGE_SHIFT - UNIT_SHIFT)) as usize;
        debug_assert!(page < self.pages.len());
        // SAFETY: a live chunk's page is one of `pages`.
        let c = unsafe { self.pages.get_unchecked(page) }.class as usize;
        debug_assert!(c < 64);
        (c + 1) * 4
    }

    /// Starts loading the bookkeeping of the page holding `off` (which
    /// [`Arena::small_chunk_bytes`] reads).
    #[inline(always)]
    pub fn page_meta_addr(&self, off: u32) -> *const u8 {
        self.pages
            .as_ptr()
            .wrapping_add((off >> (PAGE_SHIFT - UNIT_SHIFT)) as usize)
            .cast()
    }

    /// Makes sure a block of `size` bytes (a class's, not a large one) can
    /// be allocated: a class without a free chunk gets a page now. `None`
    /// when the range is exhausted.
    pub fn reserve(&mut self, size: usize) -> Option<()> {
        if size > MAX_CLASS_SIZE {
            // A run: there is one free, or room at the high-water mark.
            let n = size.div_ceil(PAGE);
            if self.base.is_null() {
                self.reserve_range()?;
            }
            let fits = self.hwm + n <= self.reserved_pages
                || self.free_runs.values().any(|&len| len as usize >= n);
            return fits.then_some(());
        }
        let c = class_of(size);
        if self.page_for_new(c).is_none() {
            self.new_class_page(c)?;
        }
        Some(())
    }

    /// Gives class `c` a fresh page; it joins the partial list, or, in an
    /// ordered arena, the ring's newest end as the class's head (the old
    /// head, if it has room, joins the partial list).
    fn new_class_page(&mut self, c: usize) -> Option<usize> {
        let p = self.take_pages(1)?;
        self.pages[p] = PageMeta {
            class: c as u16,
            ..FREE_PAGE
        };
        let per_page = self.classes[c].per_page as usize;
        self.classes[c].free_chunks += per_page;
        match self.order.as_mut() {
            Some(o) => {
                o.link_newest(p);
                let old = std::mem::replace(&mut o.head[c], p as u32) as usize;
                if old != 0 && self.has_free(old) {
                    self.push_partial(c, old);
                }
            }
            None => self.push_partial(c, p),
        }
        Some(p)
    }

    /// The page an evacuation in an ordered arena moves a block of class
    /// `c` to: the class's fill, else a partial page the hand is not on,
    /// else the head.
    fn ordered_move_target(&self, c: usize) -> Option<usize> {
        let o = self.order.as_ref()?;
        let fill = o.fill[c] as usize;
        if fill != 0 && self.has_free(fill) && self.pages[fill].partial != NOT_PARTIAL {
            return Some(fill);
        }
        let list = &self.classes[c].partial;
        list.iter()
            .rev()
            .find(|&&p| p != o.hand)
            .or(list.last())
            .map(|&p| p as usize)
            .or_else(|| self.head_with_room(c))
    }

    /// Allocates a block of `size` bytes; `None` when the reserved range is
    /// exhausted (or cannot be reserved).
    pub fn alloc(&mut self, size: usize) -> Option<u32> {
        if size > MAX_CLASS_SIZE {
            return self.alloc_large(size.div_ceil(PAGE));
        }
        let c = class_of(size);
        let found = if self.evacuating && self.order.is_some() {
            self.ordered_move_target(c)
        } else {
            self.page_for_new(c)
        };
        let page = match found {
            Some(p) => p,
            None => self.new_class_page(c)?,
        };
        Some(self.alloc_at(c, page))
    }

    /// Allocates a chunk of class `c` in `page`, which has one free.
    fn alloc_at(&mut self, c: usize, page: usize) -> u32 {
        let cls = &mut self.classes[c];
        let (size, per_page) = (cls.size as usize, cls.per_page);
        cls.free_chunks -= 1;
        let page_ptr = self.page_ptr(page);
        let m = &mut self.pages[page];
        let idx = if m.free_head != 0 {
            let idx = (m.free_head - 1) as usize;
            // SAFETY: a free chunk of this page holds its successor in
            // bytes 1..3 (written by `free`); the page is committed.
            m.free_head =
                unsafe { ptr::read_unaligned(page_ptr.add(idx * size + 1) as *const u16) };
            idx
        } else {
            m.bump += 1;
            (m.bump - 1) as usize
        };
        m.live += 1;
        let m = *m;
        if m.free_head == 0 && m.bump == per_page {
            self.remove_partial(c, page);
        }
        ((page << PAGE_SHIFT) + idx * size) as u32 >> UNIT_SHIFT
    }

    /// Frees the chunk at `off`. Returns a page the caller should evacuate
    /// (move its live chunks with [`Arena::alloc`] + [`Arena::free`] inside
    /// [`Arena::begin_evacuation`] / [`Arena::end_evacuation`]) when its
    /// class has two pages' worth of free chunks.
    pub fn free(&mut self, off: u32) -> Option<usize> {
        let page = (off >> (PAGE_SHIFT - UNIT_SHIFT)) as usize;
        let m = self.pages[page];
        if m.class == PAGE_LARGE {
            self.pages_in_use -= m.partial as usize;
            self.give_pages(page, m.partial as usize);
            return None;
        }
        let c = m.class as usize;
        let (size, per_page) = {
            let cls = &self.classes[c];
            (cls.size as usize, cls.per_page)
        };
        let idx = ((off as usize) << UNIT_SHIFT) - (page << PAGE_SHIFT);
        let idx = idx / size;
        let was_full = m.free_head == 0 && m.bump == per_page;
        // SAFETY: the chunk is inside a committed page; its first three
        // bytes become the free mark and the next free chunk's index.
        unsafe {
            let p = self.page_ptr(page).add(idx * size);
            *p = FREE_MARK;
            ptr::write_unaligned(p.add(1) as *mut u16, m.free_head);
        }
        let pm = &mut self.pages[page];
        pm.free_head = idx as u16 + 1;
        pm.live -= 1;
        self.classes[c].free_chunks += 1;
        if pm.live == 0 {
            // The page is empty: back to the range and the kernel.
            self.remove_partial(c, page);
            self.classes[c].free_chunks -= per_page as usize;
            self.pages_in_use -= 1;
            self.release_page(page);
            return None;
        }
        let (hand, fill, head) = match &self.order {
            Some(o) => (o.hand as usize, o.fill[c] as usize, o.head[c] as usize),
            None => (0, 0, 0),
        };
        if was_full && !self.evacuating && page != head {
            self.push_partial(c, page);
        }
        let cls = &self.classes[c];
        // Ordered, a class's free chunks also sit in its head and fill (and
        // the page under the hand), which no evacuation empties: one page
        // more before one starts.
        let pages = if self.order.is_some() { 3 } else { 2 };
        if self.evacuating || per_page < 2 || cls.free_chunks < pages * per_page as usize {
            return None;
        }
        // The emptiest of the few most recently partial pages (not the
        // hand's, nor the fill, in an ordered arena).
        cls.partial
            .iter()
            .rev()
            .map(|&p| p as usize)
            .filter(|&p| p != hand && p != fill)
            .take(EVACUATION_CANDIDATES)
            .min_by_key(|&p| self.pages[p].live)
    }

    /// Starts evacuating `page`: it leaves its class's partial list, so
    /// allocations go to the class's other pages. Returns the offsets of
    /// its chunks (live and free: a free one has [`FREE_MARK`] in its first
    /// byte).
    pub fn begin_evacuation(&mut self, page: usize) -> impl Iterator<Item = u32> {
        self.evacuating = true;
        let m = self.pages[page];
        let c = m.class as usize;
        self.remove_partial(c, page);
        // Its free chunks still count in the class's total (the release
        // subtracts the whole page), but nothing is allocated there: the
        // class's other pages hold at least `2·per_page − (per_page − live)`
        // free chunks, more than the page's `live`.
        let size = self.classes[c].size as usize;
        let first = (page << PAGE_SHIFT) >> UNIT_SHIFT;
        (0..m.bump as usize).map(move |i| (first + ((i * size) >> UNIT_SHIFT)) as u32)
    }

    /// True when `page` is free (an evacuation moved its last chunk).
    pub fn page_is_free(&self, page: usize) -> bool {
        self.pages[page].class == PAGE_FREE
    }

    /// Ends an evacuation (its page has been freed chunk by chunk).
    pub fn end_evacuation(&mut self, page: usize) {
        self.evacuating = false;
        debug_assert_eq!(self.pages[page].class, PAGE_FREE, "the page emptied");
    }

    fn push_partial(&mut self, c: usize, page: usize) {
        let list = &mut self.classes[c].partial;
        self.pages[page].partial = list.len() as u32;
        list.push(page as u32);
    }

    fn remove_partial(&mut self, c: usize, page: usize) {
        let pos = self.pages[page].partial;
        if pos == NOT_PARTIAL {
            return;
        }
        let list = &mut self.classes[c].partial;
        list.swap_remove(pos as usize);
        if let Some(&moved) = list.get(pos as usize) {
            self.pages[moved as usize].partial = pos;
        }
        self.pages[page].partial = NOT_PARTIAL;
    }

    fn alloc_large(&mut self, n: usize) -> Option<u32> {
        let p = self.take_pages(n)?;
        self.pages[p] = PageMeta {
            class: PAGE_LARGE,
            live: 1,
            partial: n as u32,
            ..FREE_PAGE
        };
        for q in p + 1..p + n {
            self.pages[q] = PageMeta {
                class: PAGE_LARGE_TAIL,
                ..FREE_PAGE
            };
        }
        self.pages_in_use += n - 1; // take_pages counted one
        if let Some(o) = self.order.as_mut() {
            o.link_newest(p);
        }
        Some((p << (PAGE_SHIFT - UNIT_SHIFT)) as u32)
    }

    /// `n` contiguous free pages (the lowest run that fits, else new pages
    /// at the high-water mark), counted in use (one of them: the caller
    /// counts the rest of a run).
    fn take_pages(&mut self, n: usize) -> Option<usize> {
        if n == 1 {
            if let Some(p) = self.spare.pop() {
                self.pages_in_use += 1;
                return Some(p as usize);
            }
        }
        let found = self
            .free_runs
            .iter()
            .find(|(_, &len)| len as usize >= n)
            .map(|(&s, &len)| (s as usize, len as usize));
        let p = match found {
            Some((s, len)) => {
                self.free_runs.remove(&(s as u32));
                if len > n {
                    self.free_runs.insert((s + n) as u32, (len - n) as u32);
                }
                s
            }
            None => {
                if self.base.is_null() {
                    self.reserve_range()?;
                }
                if self.hwm + n > self.reserved_pages {
                    return None;
                }
                let p = self.hwm;
                self.hwm += n;
                let need = self.hwm << PAGE_SHIFT;
                if need > self.committed {
                    let to = need.div_ceil(COMMIT_STEP) * COMMIT_STEP;
                    let to = to.min(self.reserved_pages << PAGE_SHIFT);
                    // SAFETY: [committed, to) lies inside the reserved range.
                    let r = unsafe {
                        libc::mprotect(
                            self.base.add(self.committed).cast(),
                            to - self.committed,
                            libc::PROT_READ | libc::PROT_WRITE,
                        )
                    };
                    if r != 0 {
                        self.hwm -= n;
                        return None;
                    }
                    // Huge pages where the kernel offers them on request
                    // (THP `madvise`): random reads over the entries then
                    // miss the TLB far less. A hint; failure is harmless.
                    // SAFETY: the same committed range.
                    unsafe {
                        libc::madvise(
                            self.base.add(self.committed).cast(),
                            to - self.committed,
                            libc::MADV_HUGEPAGE,
                        )
                    };
                    self.committed = to;
                }
                if self.pages.len() < self.hwm {
                    self.pages.resize(self.hwm, FREE_PAGE);
                }
                p
            }
        };
        self.pages_in_use += 1;
        Some(p)
    }

    /// Takes an emptied class page out of use: kept mapped as a spare for
    /// the next new page while there are fewer than [`SPARE_PAGES`], else
    /// given back. Under eviction pages empty and are taken again all the
    /// time (SIEVE's hand empties one for every page of new keys): a spare
    /// saves the kernel's round trip, four page faults and a zeroing.
    fn release_page(&mut self, p: usize) {
        if self.spare.len() < SPARE_PAGES {
            self.leave_ring(p);
            self.pages[p] = FREE_PAGE;
            self.spare.push(p as u32);
        } else {
            self.give_pages(p, 1);
        }
    }

    /// Takes page `p` (a class page or a large run's first page, about to
    /// be freed) out of SIEVE's ring, if the arena is ordered.
    fn leave_ring(&mut self, p: usize) {
        if let Some(o) = self.order.as_mut() {
            o.unlink(p, self.pages[p].class);
        }
    }

    /// Returns pages `p..p + n` to the free runs (coalescing) and their
    /// memory to the kernel.
    fn give_pages(&mut self, p: usize, n: usize) {
        self.leave_ring(p);
        for q in p..p + n {
            self.pages[q] = FREE_PAGE;
        }
        // SAFETY: the pages are inside the committed range and hold nothing
        // anyone refers to any more.
        unsafe {
            libc::madvise(self.page_ptr(p).cast(), n * PAGE, libc::MADV_DONTNEED);
        }
        let (mut start, mut len) = (p as u32, n as u32);
        if let Some((&s, &l)) = self.free_runs.range(..start).next_back() {
            if s + l == start {
                self.free_runs.remove(&s);
                start = s;
                len += l;
            }
        }
        if let Some(&l) = self.free_runs.get(&(start + len)) {
            self.free_runs.remove(&(start + len));
            len += l;
        }
        self.free_runs.insert(start, len);
    }

    #[inline]
    fn page_ptr(&self, page: usize) -> *mut u8 {
        self.base.wrapping_add(page << PAGE_SHIFT)
    }

    /// Reserves the address range (`PROT_NONE`: no memory is committed),
    /// as large as the system allows up to 16 GiB, starting at a 2 MiB
    /// boundary (so the commit steps can be huge pages).
    fn reserve_range(&mut self) -> Option<()> {
        let mut size = MAX_RESERVE;
        while size >= 64 << 20 {
            let len = size + COMMIT_STEP;
            // SAFETY: an anonymous private mapping at an address of the
            // kernel's choice; nothing else is touched.
            let p = unsafe {
                libc::mmap(
                    ptr::null_mut(),
                    len,
                    libc::PROT_NONE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            if p != libc::MAP_FAILED {
                self.mapping = (p.cast(), len);
                let skip = (p as usize).next_multiple_of(COMMIT_STEP) - p as usize;
                self.base = self.mapping.0.wrapping_add(skip);
                // The last page stays out: offset u32::MAX is never a chunk
                // (the table's empty slot has it).
                self.reserved_pages = (size >> PAGE_SHIFT) - 1;
                return Some(());
            }
            size /= 2;
        }
        None
    }

    /// Frees every block and the address range.
    pub fn clear(&mut self) {
        let ordered = self.is_ordered();
        *self = Arena::new();
        self.set_ordered(ordered);
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        if !self.mapping.0.is_null() {
            // SAFETY: the range was mapped by `reserve_range` with this size
            // and nothing refers into it once the arena goes.
            unsafe { libc::munmap(self.mapping.0.cast(), self.mapping.1) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_cover_every_size_with_little_rounding() {
        let mut prev = 0;
        for c in 0..NR_CLASSES {
            let s = class_size(c);
            assert!(s > prev && s % 4 == 0, "class {c}: {s}");
            assert_eq!(class_of(s), c);
            assert_eq!(class_of(prev + 1), c);
            prev = s;
        }
        assert_eq!(prev, MAX_CLASS_SIZE);
        for size in 1..=MAX_CLASS_SIZE {
            let got = class_size(class_of(size));
            assert!(
                got >= size && got - size <= (size / 32).max(3),
                "{size} -> {got}"
            );
        }
        // The seed's entry: 5 header bytes, a 6-byte key, a 128-byte value.
        assert_eq!(charge(139), 140);
        assert_eq!(charge(MAX_CLASS_SIZE + 1), 2 * PAGE);
    }

    fn fill(a: &Arena, off: u32, size: usize, byte: u8) {
        // SAFETY: a live chunk of at least `size` bytes.
        unsafe { ptr::write_bytes(a.ptr(off), byte, size) };
    }

    fn check(a: &Arena, off: u32, size: usize, byte: u8) {
        // SAFETY: as in `fill`.
        let s = unsafe { std::slice::from_raw_parts(a.ptr(off), size) };
        assert!(s.iter().all(|&b| b == byte), "chunk {off} of {size} B");
    }

    #[test]
    fn alloc_free_reuse_and_pages_go_back() {
        let mut a = Arena::new();
        assert_eq!(a.held_bytes(), 0);
        let mut live = Vec::new();
        for i in 0..10_000usize {
            let size = 20 + i % 300;
            let off = a.alloc(size).unwrap();
            fill(&a, off, size, (i % 100) as u8 + 1);
            live.push((off, size, (i % 100) as u8 + 1));
        }
        let held = a.held_bytes();
        let payload: usize = live.iter().map(|&(_, s, _)| charge(s)).sum();
        assert!(
            held >= payload && held < payload + 80 * PAGE,
            "{held} vs {payload}"
        );
        for &(off, size, b) in &live {
            check(&a, off, size, b);
        }
        // Free everything: every page goes back.
        for &(off, ..) in &live {
            a.free(off); // a named candidate may be ignored
        }
        assert_eq!(a.held_bytes(), 0);
        // Pages are reused from the free runs, not from new address space.
        let hwm = a.hwm;
        for _ in 0..1000 {
            a.alloc(100).unwrap();
        }
        assert_eq!(a.hwm, hwm);
    }

    #[test]
    fn large_blocks_take_runs_that_coalesce() {
        let mut a = Arena::new();
        let x = a.alloc(3 * PAGE).unwrap();
        let y = a.alloc(PAGE + 1).unwrap();
        assert_eq!(a.held_bytes(), 5 * PAGE);
        assert_eq!(a.chunk_bytes(x), 3 * PAGE);
        fill(&a, x, 3 * PAGE, 7);
        fill(&a, y, PAGE + 1, 9);
        check(&a, x, 3 * PAGE, 7);
        a.free(x);
        a.free(y);
        assert_eq!(a.held_bytes(), 0);
        assert_eq!(a.free_runs.len(), 1, "freed runs coalesce");
        let hwm = a.hwm;
        a.alloc(5 * PAGE).unwrap();
        assert_eq!(a.hwm, hwm, "a run of five fits the coalesced space");
    }

    #[test]
    fn evacuation_candidates_appear_at_two_pages_of_free_chunks() {
        let mut a = Arena::new();
        let offs: Vec<u32> = (0..10 * 128).map(|_| a.alloc(128).unwrap()).collect();
        assert_eq!(a.held_bytes(), 10 * PAGE);
        // Free every other chunk: pages stay in use, a candidate appears
        // once 256 chunks (two pages' worth) are free.
        let mut candidate = None;
        for (i, &off) in offs.iter().enumerate().filter(|(i, _)| i % 2 == 0) {
            if let Some(p) = a.free(off) {
                candidate = Some((i, p));
                break;
            }
        }
        let (i, page) = candidate.expect("a candidate");
        assert_eq!(i / 2 + 1, 256);
        // Evacuate it by hand: move its live chunks.
        let chunks: Vec<u32> = a.begin_evacuation(page).collect();
        for off in chunks {
            if a.page_is_free(page) {
                break;
            }
            // SAFETY: a chunk of the page being evacuated.
            if unsafe { *a.ptr(off) } != FREE_MARK {
                let to = a.alloc(128).unwrap();
                assert_ne!(to >> (PAGE_SHIFT - UNIT_SHIFT), page as u32);
                a.free(off);
            }
        }
        a.end_evacuation(page);
        assert_eq!(a.held_bytes(), 9 * PAGE);
    }

    /// Ordered: new blocks go to the class's newest page only, the hand
    /// walks live blocks oldest page first and wraps, freed pages leave the
    /// ring (a hand on one moves on), and emptied pages come back as spares
    /// before new address space.
    #[test]
    fn ordered_pages_keep_insertion_order() {
        let mut a = Arena::new();
        a.set_ordered(true);
        let per_page = PAGE / 128;
        let offs: Vec<u32> = (0..3 * per_page).map(|_| a.alloc(128).unwrap()).collect();
        let page_of = |off: u32| (off >> (PAGE_SHIFT - UNIT_SHIFT)) as usize;
        // Free a chunk of the first page: a new block still goes to the
        // newest page (a fourth one, the third being full).
        a.free(offs[5]);
        let new = a.alloc(128).unwrap();
        assert_ne!(page_of(new), page_of(offs[5]));
        assert_eq!(a.held_bytes(), 4 * PAGE);
        let mut seen = Vec::new();
        loop {
            match a.hand_next() {
                Hand::Block(off) => seen.push(off),
                Hand::PageDone(p) if p == page_of(new) => break,
                Hand::PageDone(_) => {}
                Hand::Empty => panic!("blocks are live"),
            }
        }
        let mut expect: Vec<u32> = offs.iter().copied().filter(|&o| o != offs[5]).collect();
        expect.push(new);
        assert_eq!(seen, expect, "oldest page first, in chunk order");
        // The hand wraps to the oldest page.
        assert_eq!(a.hand_next(), Hand::Block(offs[0]));
        // Freeing the page under the hand moves it to the next page.
        for &o in &offs[..per_page] {
            if o != offs[5] {
                a.free(o);
            }
        }
        assert_eq!(a.hand_next(), Hand::Block(offs[per_page]));
        // The emptied page is a spare: the next new page reuses it.
        let hwm = a.hwm;
        let mut more = Vec::new();
        while a.held_bytes() < 4 * PAGE {
            more.push(a.alloc(128).unwrap());
        }
        assert_eq!(a.hwm, hwm, "a spare page, not new address space");
        assert!(more.iter().any(|&o| page_of(o) == page_of(offs[0])));
        // Unordered again: the head's free chunks are allocated as before.
        a.set_ordered(false);
        let last = *more.last().unwrap();
        assert_eq!(page_of(a.alloc(128).unwrap()), page_of(last));
    }
}
