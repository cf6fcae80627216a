//! A walk over the element headers of a DICOM file before dicom-object parses it.
//!
//! Why: every element header declares its value length (up to 4 GiB), and dicom-parser 0.10 allocates
//! that many bytes before it reads them, some of them with an infallible `resize` (a 7 KB file whose
//! string value declares 800 MB aborted `unimed` with SIGABRT; found by fuzz/fuzz_targets/dicom.rs).
//! No value can be longer than the bytes left in its file, nor than its enclosing defined-length item
//! or sequence. This walk reads only the headers (values are skipped with a seek, so a large file is
//! not loaded) and refuses the first element that breaks that rule, naming its tag, the declared
//! length and the bytes left. Every allocation the parser then makes while building the object is
//! bounded by a length checked here (a small multiple of it: text decoding, u32 offset tables).
//!
//! The walk follows dicom-parser's own state machine (`DataSetReader::next` in
//! dicom-parser-0.10.1/src/dataset/read.rs) and decodes headers with the transfer syntax's own
//! decoder (explicit/implicit VR, little/big endian; implicit VR takes sequence-ness from the
//! standard dictionary), so both sides see the same elements: a sequence is an SQ element or any
//! other element of undefined length; undefined-length PixelData holds encapsulated fragments, each a
//! defined-length item. It also bounds sequence nesting, which the parser follows by recursion.
//! At the end of the file (even inside a header) the walk stops and leaves the rest to the parser:
//! no byte is left for it to misread. A complete header that breaks the structure (an element where an
//! item must start, a fragment of undefined length) is refused here rather than left to the parser:
//! the parser reads the two-byte-VR `xs` attributes of signed images as SS even when their header says
//! SQ, so inside a container the two may disagree on where the structure broke.
//!
//! Binary values (AT, US, SS, UL, FL, FD, O*, ...) must hold a whole number of their numbers: the
//! parser reads `length / size` numbers and then counts all `length` bytes as read, so the stream
//! and its position would part ways and every later header would be decoded from the wrong bytes,
//! unchecked here (found by fuzzing: an AT value of 10 bytes led to an 875 MB allocation).
//!
//! A deflated data set (Deflated Explicit VR Little Endian) declares lengths in inflated bytes, so
//! the walk measures the inflated stream first (at most `MAX_INFLATED_BYTES`, a bound on the time a
//! deflate bomb can take) and then walks it like any other, with its inflated length as the bound.

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use dicom_dictionary_std::uids;
use dicom_object::Tag;
use dicom_transfer_syntax_registry::{TransferSyntax, TransferSyntaxIndex, TransferSyntaxRegistry};
use flate2::read::DeflateDecoder;

use super::dicom::{Framing, DICM_MAGIC, DICM_OFFSET};
use super::error::InputError;

/// Deepest sequence nesting accepted. Real objects nest a handful of levels (enhanced multi-frame
/// functional groups: 3–4); dicom-object builds nested sequences by recursion, so a file nesting
/// thousands of levels (20 bytes each) could exhaust the stack.
pub(crate) const MAX_SEQUENCE_DEPTH: usize = 64;

/// Most bytes a deflated data set may inflate to (2 GiB, ~1,000 uncompressed 1024² 16-bit frames).
/// Measuring the stream takes time in proportion to it, and the parser inflates it again.
const MAX_INFLATED_BYTES: u64 = 2 << 30;

/// The value-length field of an element or item of undefined length (PS3.5 7.1.1).
const UNDEFINED_LENGTH: u32 = u32::MAX;
/// File meta group length (0002,0000): the first meta element, 4 bytes (UL) (PS3.10 7.1).
const META_GROUP_LENGTH: Tag = Tag(0x0002, 0x0000);
const META_GROUP_LENGTH_BYTES: u32 = 4;
const TRANSFER_SYNTAX_UID: Tag = Tag(0x0002, 0x0010);
const PIXEL_DATA: Tag = Tag(0x7FE0, 0x0010);
const ITEM: Tag = Tag(0xFFFE, 0xE000);
const ITEM_DELIMITER: Tag = Tag(0xFFFE, 0xE00D);
const SEQUENCE_DELIMITER: Tag = Tag(0xFFFE, 0xE0DD);
const SQ: &str = "SQ";

/// Bytes per number of the binary value representations (PS3.5 6.2); every other VR is read as
/// exactly its length in bytes.
fn binary_value_size(vr: &str) -> Option<u32> {
    match vr {
        "US" | "SS" | "OW" => Some(2),
        "AT" | "UL" | "SL" | "OL" | "FL" | "OF" => Some(4),
        "FD" | "OD" | "SV" | "UV" | "OV" => Some(8),
        _ => None,
    }
}

/// What a defined length was checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Within {
    File,
    /// The defined-length sequence with this tag.
    Sequence(Tag),
    /// A defined-length item of the sequence with this tag.
    Item(Tag),
}

/// Why the walk refused a file.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// A defined length (value, item or sequence) runs past the end of its container.
    PastEnd {
        tag: Tag,
        declared: u32,
        left: u64,
        within: Within,
    },
    /// A header starts inside its container but ends past it.
    HeaderPastEnd {
        tag: Tag,
        within: Within,
    },
    /// A binary value whose length is not a whole number of its numbers.
    Misaligned {
        tag: Tag,
        vr: &'static str,
        declared: u32,
        size: u32,
    },
    /// A complete header that does not belong where it is.
    Unexpected {
        found: Tag,
        expected: &'static str,
        within: Within,
    },
    /// More than `MAX_SEQUENCE_DEPTH` nested sequences.
    TooDeep {
        tag: Tag,
    },
    /// A deflated data set that does not inflate, or inflates past `MAX_INFLATED_BYTES`.
    Deflate(String),
    /// A transfer syntax that is unknown or whose data set is compressed other than by deflate.
    TransferSyntax {
        uid: String,
        name: String,
    },
    Io(std::io::Error),
}

impl fmt::Display for Within {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Within::File => f.write_str("the file"),
            Within::Sequence(tag) => write!(f, "its enclosing sequence {tag}"),
            Within::Item(tag) => write!(f, "its enclosing item of sequence {tag}"),
        }
    }
}

/// Walks the file at `path` (recognised by `sniff` as `framing`); a refusal becomes the `InputError`
/// of an unparseable file (exit 3 in the CLI), naming the file and the element.
pub(crate) fn check(path: &Path, framing: Framing) -> Result<(), InputError> {
    let io = |source| InputError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let file_len = file.metadata().map_err(io)?.len();
    match walk(&mut BufReader::new(file), file_len, framing) {
        Ok(()) => Ok(()),
        Err(Refusal::Io(source)) => Err(io(source)),
        Err(Refusal::TransferSyntax { uid, name }) => Err(InputError::UnsupportedTransferSyntax {
            path: path.to_path_buf(),
            uid,
            name,
        }),
        Err(refusal) => Err(InputError::DicomParse {
            path: path.to_path_buf(),
            message: describe(&refusal),
        }),
    }
}

fn describe(refusal: &Refusal) -> String {
    match refusal {
        Refusal::PastEnd {
            tag,
            declared,
            left,
            within,
        } => format!(
            "element {tag} declares a length of {declared} bytes, but only {left} bytes are left in \
             {within}"
        ),
        Refusal::HeaderPastEnd { tag, within } => {
            format!("the header of element {tag} runs past the end of {within}")
        }
        Refusal::Misaligned {
            tag,
            vr,
            declared,
            size,
        } => format!(
            "element {tag} ({vr}) declares a length of {declared} bytes, not a multiple of its \
             {size}-byte values"
        ),
        Refusal::Unexpected {
            found,
            expected,
            within,
        } => format!("found {found} where {expected} must come, in {within}"),
        Refusal::TooDeep { tag } => format!(
            "sequence {tag} is nested more than {MAX_SEQUENCE_DEPTH} levels deep (the most accepted)"
        ),
        Refusal::Deflate(why) => format!("its deflated data set {why}"),
        Refusal::TransferSyntax { uid, name } => format!("transfer syntax {uid} ({name})"),
        Refusal::Io(e) => e.to_string(),
    }
}

/// Walks the meta group, then the data set, of a file of `file_len` bytes read from its start.
pub(crate) fn walk<R: Read + Seek>(
    reader: &mut BufReader<R>,
    file_len: u64,
    framing: Framing,
) -> Result<(), Refusal> {
    let magic_at = match framing {
        Framing::Preamble => DICM_OFFSET,
        Framing::NoPreamble => 0,
    };
    let mut walker = Walker {
        reader,
        pos: 0,
        file_len,
        stack: Vec::new(),
    };
    walker.skip(u32::try_from(magic_at + DICM_MAGIC.len()).unwrap_or(u32::MAX))?;
    let Some(ts) = walker.meta()? else {
        return Ok(());
    };
    if ts.uid() != uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN {
        return walker.data_set(ts);
    }
    let start = walker.pos;
    let inflated_len = inflated_len(reader)?;
    reader.seek(SeekFrom::Start(start)).map_err(Refusal::Io)?;
    let mut inflated = BufReader::new(Forward(DeflateDecoder::new(reader)));
    Walker {
        reader: &mut inflated,
        pos: 0,
        file_len: inflated_len,
        stack: Vec::new(),
    }
    .data_set(ts)
}

/// Bytes the deflated stream at the reader's position inflates to (read through, not kept).
fn inflated_len<R: Read>(reader: &mut R) -> Result<u64, Refusal> {
    let mut stream = DeflateDecoder::new(reader).take(MAX_INFLATED_BYTES + 1);
    let len = io::copy(&mut stream, &mut io::sink())
        .map_err(|e| Refusal::Deflate(format!("does not inflate: {e}")))?;
    if len > MAX_INFLATED_BYTES {
        return Err(Refusal::Deflate(format!(
            "inflates to more than {MAX_INFLATED_BYTES} bytes (the most accepted)"
        )));
    }
    Ok(len)
}

/// A stream that can only move forward: a seek ahead reads and drops (the walk skips values of an
/// inflating stream this way; it never seeks back).
struct Forward<R>(R);

impl<R: Read> Read for Forward<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R: Read> Seek for Forward<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let SeekFrom::Current(ahead @ 0..) = pos else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "an inflating stream only skips forward",
            ));
        };
        let ahead = ahead.unsigned_abs();
        let skipped = io::copy(&mut (&mut self.0).take(ahead), &mut io::sink())?;
        if skipped < ahead {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        // Callers (BufReader::seek_relative) ignore the position; the walker counts its own.
        Ok(0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sequence,
    Item,
}

/// An open sequence or item, as dicom-parser's `SeqToken`.
#[derive(Debug, Clone, Copy)]
struct Open {
    kind: Kind,
    /// The sequence's tag (for an item: its sequence's), for messages.
    tag: Tag,
    pixel_data: bool,
    /// First byte after it, when its length is defined.
    end: Option<u64>,
}

impl Open {
    fn within(&self) -> Within {
        match self.kind {
            Kind::Sequence => Within::Sequence(self.tag),
            Kind::Item => Within::Item(self.tag),
        }
    }
}

/// A header as the transfer syntax's decoder read it.
struct Header {
    tag: Tag,
    vr: &'static str,
    len: u32,
}

struct Walker<'a, R> {
    reader: &'a mut BufReader<R>,
    /// Bytes consumed from the start of the file.
    pos: u64,
    file_len: u64,
    stack: Vec<Open>,
}

impl<R: Read + Seek> Walker<'_, R> {
    /// The innermost limit on the current position: the nearest end among the open defined-length
    /// sequences and items, else the end of the file.
    fn bound(&self) -> (u64, Within) {
        let mut best = (self.file_len, Within::File);
        for open in &self.stack {
            if let Some(end) = open.end {
                if end <= best.0 {
                    best = (end, open.within());
                }
            }
        }
        best
    }

    /// The innermost open container, for messages.
    fn within(&self) -> Within {
        self.stack.last().map_or(Within::File, Open::within)
    }

    /// Refuses `len` bytes for `tag` starting here unless they fit the current bound.
    fn fits(&self, tag: Tag, len: u32) -> Result<(), Refusal> {
        let (end, within) = self.bound();
        let left = end.saturating_sub(self.pos);
        if self.pos > end {
            return Err(Refusal::HeaderPastEnd { tag, within });
        }
        if u64::from(len) > left {
            return Err(Refusal::PastEnd {
                tag,
                declared: len,
                left,
                within,
            });
        }
        Ok(())
    }

    fn skip(&mut self, len: u32) -> Result<(), Refusal> {
        self.reader
            .seek_relative(i64::from(len))
            .map_err(Refusal::Io)?;
        self.pos += u64::from(len);
        Ok(())
    }

    /// The next header through `decoder`; `None` where the parser would stop too (end of file, a
    /// truncated or undecodable header), so that the parser reports it.
    fn header(&mut self, ts: &TransferSyntax) -> Option<Header> {
        let decoder = ts.decoder_for::<dyn Read>()?;
        let (header, bytes) = decoder
            .decode_header(&mut *self.reader as &mut dyn Read)
            .ok()?;
        self.pos += bytes as u64;
        Some(Header {
            tag: header.tag,
            vr: header.vr.to_string(),
            len: header.len.0,
        })
    }

    /// The file meta group, as dicom-object's `FileMetaTable::read_from` reads it: (0002,0000) first,
    /// then elements until that many bytes are consumed. Returns the data set's transfer syntax, or
    /// `None` where dicom-object will refuse the meta group itself.
    fn meta(&mut self) -> Result<Option<&'static TransferSyntax>, Refusal> {
        let Some(meta_ts) = TransferSyntaxRegistry.get(uids::EXPLICIT_VR_LITTLE_ENDIAN) else {
            return Ok(None);
        };
        let Some(first) = self.header(meta_ts) else {
            return Ok(None);
        };
        if first.tag != META_GROUP_LENGTH || first.len != META_GROUP_LENGTH_BYTES {
            return Ok(None);
        }
        let mut group_len = [0u8; META_GROUP_LENGTH_BYTES as usize];
        if self.reader.read_exact(&mut group_len).is_err() {
            return Ok(None);
        }
        self.pos += u64::from(META_GROUP_LENGTH_BYTES);
        let group_len = u32::from_le_bytes(group_len);
        let mut ts_uid = None;
        let mut read = 0u32;
        while read < group_len {
            let start = self.pos;
            let Some(h) = self.header(meta_ts) else {
                return Ok(None);
            };
            if h.len == UNDEFINED_LENGTH {
                return Ok(None);
            }
            self.fits(h.tag, h.len)?;
            if h.tag == TRANSFER_SYNTAX_UID {
                let mut value = Vec::new();
                (&mut *self.reader)
                    .take(u64::from(h.len))
                    .read_to_end(&mut value)
                    .map_err(Refusal::Io)?;
                self.pos += u64::from(h.len);
                ts_uid = Some(value);
            } else {
                self.skip(h.len)?;
            }
            let header_len = u32::try_from(self.pos - start - u64::from(h.len)).unwrap_or(u32::MAX);
            read = read.saturating_add(header_len).saturating_add(h.len);
        }
        let Some(uid) = ts_uid else {
            return Ok(None);
        };
        let uid = String::from_utf8_lossy(&uid)
            .trim_end_matches(|c: char| c.is_whitespace() || c == '\0')
            .to_string();
        let Some(ts) = TransferSyntaxRegistry.get(&uid) else {
            return Err(Refusal::TransferSyntax {
                uid,
                name: "unknown transfer syntax".into(),
            });
        };
        // A codec that is neither "none" nor pixel-data encapsulation adapts the whole data set; of
        // those, `walk` reads deflate.
        let deflated = ts.uid() == uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN;
        if !deflated && !ts.is_codec_free() && !ts.is_encapsulated_pixel_data() {
            return Err(Refusal::TransferSyntax {
                uid,
                name: ts.name().to_string(),
            });
        }
        Ok(Some(ts))
    }

    fn push(&mut self, kind: Kind, tag: Tag, len: u32, pixel_data: bool) -> Result<(), Refusal> {
        if kind == Kind::Sequence {
            let depth = self
                .stack
                .iter()
                .filter(|o| o.kind == Kind::Sequence)
                .count();
            if depth >= MAX_SEQUENCE_DEPTH {
                return Err(Refusal::TooDeep { tag });
            }
        }
        let end = if len == UNDEFINED_LENGTH {
            None
        } else {
            self.fits(tag, len)?;
            Some(self.pos + u64::from(len))
        };
        self.stack.push(Open {
            kind,
            tag,
            pixel_data,
            end,
        });
        Ok(())
    }

    /// The data set, token by token as `DataSetReader::next`, skipping values instead of reading them.
    fn data_set(&mut self, ts: &TransferSyntax) -> Result<(), Refusal> {
        // The reader's `in_sequence`: an item header (or a sequence delimiter) comes next.
        let mut in_sequence = false;
        // The reader's `delimiter_check_pending`: a defined-length container may have ended.
        let mut check_end = false;
        loop {
            if check_end {
                while let Some(open) = self.stack.last().copied() {
                    let Some(end) = open.end else { break };
                    if end > self.pos {
                        break;
                    }
                    if end < self.pos {
                        return Err(Refusal::HeaderPastEnd {
                            tag: open.tag,
                            within: open.within(),
                        });
                    }
                    self.stack.pop();
                    in_sequence = open.kind == Kind::Item;
                }
                check_end = false;
            }

            if in_sequence {
                let Some(h) = self.header(ts) else {
                    return Ok(());
                };
                let unexpected = |within| Refusal::Unexpected {
                    found: h.tag,
                    expected: "an item (FFFE,E000) or a delimiter of length 0",
                    within,
                };
                match h.tag {
                    ITEM => {
                        let Some(seq) = self.stack.last().copied() else {
                            return Err(unexpected(Within::File));
                        };
                        self.push(Kind::Item, seq.tag, h.len, seq.pixel_data)?;
                        in_sequence = false;
                        check_end = h.len == 0;
                    }
                    ITEM_DELIMITER if h.len == 0 => {
                        self.stack.pop();
                        in_sequence = true;
                        check_end = true;
                    }
                    SEQUENCE_DELIMITER => {
                        self.stack.pop();
                        in_sequence = false;
                        check_end = true;
                    }
                    _ => return Err(unexpected(self.within())),
                }
                continue;
            }

            if let Some(item) = self.stack.last().copied() {
                if item.kind == Kind::Item && item.pixel_data {
                    // A fragment (or the offset table): the whole item is its value, already checked
                    // against the bound when the item was opened.
                    let Some(end) = item.end else {
                        return Err(Refusal::Unexpected {
                            found: ITEM,
                            expected: "a fragment item of defined length",
                            within: Within::Sequence(item.tag),
                        });
                    };
                    self.skip(u32::try_from(end - self.pos).unwrap_or(u32::MAX))?;
                    check_end = true;
                    continue;
                }
            }

            let Some(h) = self.header(ts) else {
                return Ok(());
            };
            if h.vr == SQ {
                self.push(Kind::Sequence, h.tag, h.len, false)?;
                in_sequence = true;
                check_end = h.len == 0;
            } else if h.tag == ITEM_DELIMITER {
                if !self.stack.is_empty() {
                    self.stack.pop();
                    in_sequence = true;
                    check_end = true;
                }
            } else if h.tag == PIXEL_DATA && h.len == UNDEFINED_LENGTH {
                self.push(Kind::Sequence, h.tag, h.len, true)?;
                let Some(first) = self.header(ts) else {
                    return Ok(());
                };
                match first.tag {
                    ITEM => {
                        self.push(Kind::Item, h.tag, first.len, true)?;
                        check_end = first.len == 0;
                    }
                    SEQUENCE_DELIMITER => {
                        self.stack.pop();
                    }
                    found => {
                        return Err(Refusal::Unexpected {
                            found,
                            expected: "the offset table item (FFFE,E000)",
                            within: Within::Sequence(PIXEL_DATA),
                        })
                    }
                }
            } else if h.len == UNDEFINED_LENGTH {
                self.push(Kind::Sequence, h.tag, h.len, false)?;
                in_sequence = true;
            } else {
                self.fits(h.tag, h.len)?;
                if let Some(size) = binary_value_size(h.vr) {
                    if h.len % size != 0 {
                        return Err(Refusal::Misaligned {
                            tag: h.tag,
                            vr: h.vr,
                            declared: h.len,
                            size,
                        });
                    }
                }
                self.skip(h.len)?;
                check_end = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
    const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
    const EXPLICIT_BE: &str = "1.2.840.10008.1.2.2";
    const DEFLATED: &str = "1.2.840.10008.1.2.1.99";
    const PATIENT_NAME: Tag = Tag(0x0010, 0x0010);
    /// ReferencedImageSequence: SQ in the dictionary, for implicit VR.
    const REFERENCED_IMAGES: Tag = Tag(0x0008, 0x1140);

    /// Encodes elements in one transfer syntax.
    #[derive(Clone, Copy)]
    struct Enc {
        explicit: bool,
        big: bool,
    }

    const ELE: Enc = Enc {
        explicit: true,
        big: false,
    };
    const ILE: Enc = Enc {
        explicit: false,
        big: false,
    };
    const EBE: Enc = Enc {
        explicit: true,
        big: true,
    };

    impl Enc {
        fn u16(self, v: u16) -> [u8; 2] {
            if self.big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        }
        fn u32(self, v: u32) -> [u8; 4] {
            if self.big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        }
        fn tag(self, tag: Tag) -> Vec<u8> {
            [self.u16(tag.0), self.u16(tag.1)].concat()
        }
        /// A header declaring `len`; `vr` is written in explicit VR only.
        fn header(self, tag: Tag, vr: &str, len: u32) -> Vec<u8> {
            let mut out = self.tag(tag);
            if self.explicit && tag.0 != 0xFFFE {
                out.extend_from_slice(vr.as_bytes());
                if matches!(vr, "OB" | "OW" | "SQ" | "UN" | "UT") {
                    out.extend_from_slice(&[0, 0]);
                    out.extend_from_slice(&self.u32(len));
                } else {
                    let short = u16::try_from(len).unwrap_or(u16::MAX);
                    out.extend_from_slice(&self.u16(short));
                }
            } else {
                out.extend_from_slice(&self.u32(len));
            }
            out
        }
        fn element(self, tag: Tag, vr: &str, value: &[u8]) -> Vec<u8> {
            let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
            [self.header(tag, vr, len), value.to_vec()].concat()
        }
        fn item(self, len: u32) -> Vec<u8> {
            self.header(ITEM, "", len)
        }
    }

    /// Preamble, "DICM" and a meta group naming `ts`, then `data_set`.
    fn file(ts: &str, data_set: &[u8]) -> Vec<u8> {
        let mut uid = ts.as_bytes().to_vec();
        if uid.len() % 2 == 1 {
            uid.push(0);
        }
        let meta_body = ELE.element(TRANSFER_SYNTAX_UID, "UI", &uid);
        let group_len = u32::try_from(meta_body.len()).unwrap_or(u32::MAX);
        let mut out = vec![0u8; DICM_OFFSET];
        out.extend_from_slice(DICM_MAGIC);
        out.extend(ELE.element(META_GROUP_LENGTH, "UL", &group_len.to_le_bytes()));
        out.extend(meta_body);
        out.extend_from_slice(data_set);
        out
    }

    fn run(bytes: &[u8]) -> Result<(), Refusal> {
        let len = bytes.len() as u64;
        walk(
            &mut BufReader::new(Cursor::new(bytes.to_vec())),
            len,
            Framing::Preamble,
        )
    }

    fn name(enc: Enc) -> Vec<u8> {
        enc.element(PATIENT_NAME, "PN", b"Doe^J ")
    }

    /// A sequence of undefined length holding one undefined-length item with `inner`.
    fn undefined_sequence(enc: Enc, inner: &[u8]) -> Vec<u8> {
        [
            enc.header(REFERENCED_IMAGES, "SQ", UNDEFINED_LENGTH),
            enc.item(UNDEFINED_LENGTH),
            inner.to_vec(),
            enc.header(ITEM_DELIMITER, "", 0),
            enc.header(SEQUENCE_DELIMITER, "", 0),
        ]
        .concat()
    }

    /// A defined-length sequence holding one defined-length item with `inner`.
    fn defined_sequence(enc: Enc, inner: &[u8]) -> Vec<u8> {
        let item_len = u32::try_from(inner.len()).unwrap_or(u32::MAX);
        let item = [enc.item(item_len), inner.to_vec()].concat();
        let seq_len = u32::try_from(item.len()).unwrap_or(u32::MAX);
        [enc.header(REFERENCED_IMAGES, "SQ", seq_len), item].concat()
    }

    #[test]
    fn well_formed_files_pass_in_every_byte_order_and_vr() {
        for (ts, enc) in [(EXPLICIT_LE, ELE), (IMPLICIT_LE, ILE), (EXPLICIT_BE, EBE)] {
            let nested = undefined_sequence(enc, &defined_sequence(enc, &name(enc)));
            let data = [name(enc), nested, name(enc)].concat();
            let r = run(&file(ts, &data));
            assert!(r.is_ok(), "{ts}: {r:?}");
        }
    }

    #[test]
    fn a_value_longer_than_the_file_is_refused_with_its_tag() {
        for (ts, enc) in [(EXPLICIT_LE, ELE), (IMPLICIT_LE, ILE), (EXPLICIT_BE, EBE)] {
            // 8 bytes follow the header; the value claims 0x3131 (explicit: 2-byte length) or 800 MB.
            let declared = if enc.explicit { 0x3131 } else { 825_425_942 };
            let data = [
                enc.header(PATIENT_NAME, "PN", declared),
                b"Doe^John".to_vec(),
            ]
            .concat();
            match run(&file(ts, &data)) {
                Err(Refusal::PastEnd {
                    tag,
                    declared: d,
                    left: 8,
                    within: Within::File,
                }) => {
                    assert_eq!((tag, d), (PATIENT_NAME, declared), "{ts}");
                }
                other => panic!("{ts}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_4gb_value_inside_an_undefined_length_sequence_is_refused() {
        let inner = ELE.header(Tag(0x0008, 0x1155), "UN", 0xF000_0000);
        let r = run(&file(EXPLICIT_LE, &undefined_sequence(ELE, &inner)));
        assert!(
            matches!(
                r,
                Err(Refusal::PastEnd {
                    tag: Tag(0x0008, 0x1155),
                    declared: 0xF000_0000,
                    within: Within::File,
                    ..
                })
            ),
            "{r:?}"
        );
    }

    #[test]
    fn a_value_past_its_enclosing_item_is_refused() {
        for (ts, enc) in [(EXPLICIT_LE, ELE), (IMPLICIT_LE, ILE)] {
            // The item declares 8 bytes: the element's 8-byte header fits, its 6-byte value does not;
            // the file continues, so only the item bound catches it.
            let inner = name(enc);
            let item = [enc.item(8), inner].concat();
            let seq_len = u32::try_from(item.len()).unwrap_or(u32::MAX);
            let data = [
                enc.header(REFERENCED_IMAGES, "SQ", seq_len),
                item,
                name(enc),
            ]
            .concat();
            let r = run(&file(ts, &data));
            assert!(
                matches!(
                    r,
                    Err(Refusal::PastEnd {
                        tag: PATIENT_NAME,
                        declared: 6,
                        left: 0,
                        within: Within::Item(REFERENCED_IMAGES)
                    })
                ),
                "{ts}: {r:?}"
            );
        }
    }

    #[test]
    fn binary_values_must_hold_whole_numbers() {
        // SelectorATValue (0072,0026) AT: 10 bytes are 2½ tags; the parser would read 8 and go on
        // decoding headers two bytes early.
        let at = ELE.element(Tag(0x0072, 0x0026), "AT", &[0; 10]);
        let r = run(&file(EXPLICIT_LE, &[at, name(ELE)].concat()));
        assert!(
            matches!(
                r,
                Err(Refusal::Misaligned {
                    tag: Tag(0x0072, 0x0026),
                    vr: "AT",
                    declared: 10,
                    size: 4
                })
            ),
            "{r:?}"
        );
        // Rows (0028,0010) US in implicit VR (VR from the dictionary): 3 bytes.
        let rows = ILE.element(Tag(0x0028, 0x0010), "", &[0; 3]);
        let r = run(&file(IMPLICIT_LE, &[rows, name(ILE)].concat()));
        assert!(
            matches!(
                r,
                Err(Refusal::Misaligned {
                    vr: "US",
                    declared: 3,
                    size: 2,
                    ..
                })
            ),
            "{r:?}"
        );
        let whole = ELE.element(Tag(0x0072, 0x0026), "AT", &[0; 8]);
        assert!(run(&file(EXPLICIT_LE, &[whole, name(ELE)].concat())).is_ok());
    }

    #[test]
    fn an_item_longer_than_its_sequence_is_refused() {
        let inner = name(ELE);
        let item = [ELE.item(u32::try_from(inner.len()).unwrap_or(0)), inner].concat();
        let data = [ELE.header(REFERENCED_IMAGES, "SQ", 8), item, name(ELE)].concat();
        let r = run(&file(EXPLICIT_LE, &data));
        assert!(
            matches!(
                r,
                Err(Refusal::PastEnd {
                    tag: REFERENCED_IMAGES,
                    left: 0,
                    within: Within::Sequence(REFERENCED_IMAGES),
                    ..
                })
            ),
            "{r:?}"
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let mut inner = name(ELE);
        for _ in 0..MAX_SEQUENCE_DEPTH {
            inner = undefined_sequence(ELE, &inner);
        }
        assert!(run(&file(EXPLICIT_LE, &inner)).is_ok(), "exactly the limit");
        let deeper = undefined_sequence(ELE, &inner);
        let r = run(&file(EXPLICIT_LE, &deeper));
        assert!(
            matches!(
                r,
                Err(Refusal::TooDeep {
                    tag: REFERENCED_IMAGES
                })
            ),
            "{r:?}"
        );
    }

    #[test]
    fn encapsulated_fragments_are_checked() {
        let pixel = |fragment_len: u32, body: &[u8]| {
            [
                ELE.header(PIXEL_DATA, "OB", UNDEFINED_LENGTH),
                ELE.item(0), // empty offset table
                ELE.item(fragment_len),
                body.to_vec(),
                ELE.header(SEQUENCE_DELIMITER, "", 0),
            ]
            .concat()
        };
        let jpeg_baseline = "1.2.840.10008.1.2.4.50";
        assert!(run(&file(jpeg_baseline, &pixel(4, &[1, 2, 3, 4]))).is_ok());
        let r = run(&file(jpeg_baseline, &pixel(0x8000_0000, &[1, 2, 3, 4])));
        assert!(
            matches!(
                r,
                Err(Refusal::PastEnd {
                    tag: PIXEL_DATA,
                    declared: 0x8000_0000,
                    within: Within::File,
                    ..
                })
            ),
            "{r:?}"
        );
    }

    #[test]
    fn a_meta_element_longer_than_the_file_is_refused() {
        let mut bytes = file(EXPLICIT_LE, &name(ELE));
        // (0002,0010) UI: its 2-byte length sits 6 bytes after the tag.
        let at = DICM_OFFSET + DICM_MAGIC.len() + 12 + 6;
        bytes[at..at + 2].copy_from_slice(&0xFFF0u16.to_le_bytes());
        let r = run(&bytes);
        assert!(
            matches!(
                r,
                Err(Refusal::PastEnd {
                    tag: TRANSFER_SYNTAX_UID,
                    declared: 0xFFF0,
                    ..
                })
            ),
            "{r:?}"
        );
    }

    fn deflate(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut enc =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn deflated_data_sets_are_walked_inflated() {
        let inner = ELE.header(Tag(0x0008, 0x1155), "UN", 0xF000_0000);
        assert!(run(&file(DEFLATED, &deflate(&name(ELE)))).is_ok());
        // Checked against the inflated length (8 bytes follow the 4 GB header), not the file's.
        let bomb = [inner, b"12345678".to_vec()].concat();
        match run(&file(DEFLATED, &deflate(&bomb))) {
            Err(Refusal::PastEnd {
                tag,
                left: 8,
                within: Within::File,
                ..
            }) => assert_eq!(tag, Tag(0x0008, 0x1155)),
            other => panic!("{other:?}"),
        }
        let r = run(&file(DEFLATED, b"not a deflate stream"));
        assert!(
            matches!(&r, Err(Refusal::Deflate(why)) if why.contains("does not inflate")),
            "{r:?}"
        );
    }

    #[test]
    fn unknown_transfer_syntaxes_are_refused() {
        let r = run(&file("1.2.3.4", &name(ELE)));
        assert!(
            matches!(&r, Err(Refusal::TransferSyntax { uid, .. }) if uid == "1.2.3.4"),
            "{r:?}"
        );
    }

    #[test]
    fn truncated_headers_are_left_to_the_parser() {
        let whole = file(EXPLICIT_LE, &name(ELE));
        for cut in [whole.len() - name(ELE).len() + 3, DICM_OFFSET + 6] {
            let r = run(&whole[..cut]);
            assert!(r.is_ok(), "cut at {cut}: {r:?}");
        }
    }

    #[test]
    fn messages_name_the_tag_the_length_and_the_bytes_left() {
        let text = describe(&Refusal::PastEnd {
            tag: PATIENT_NAME,
            declared: 825_425_942,
            left: 1234,
            within: Within::File,
        });
        assert_eq!(
            text,
            "element (0010,0010) declares a length of 825425942 bytes, but only 1234 bytes are left \
             in the file"
        );
    }
}

#[cfg(test)]
mod corpus {
    use std::path::PathBuf;

    use dicom_object::file::ReadPreamble;
    use dicom_object::OpenFileOptions;

    use super::super::dicom::sniff;
    use super::*;

    /// The pre-walk must not refuse what dicom-object parses: every DICOM file of pydicom's test set
    /// (real-world encodings: implicit/explicit VR, big endian, deflate, nested sequences,
    /// encapsulated fragments, odd lengths) and of this project's fixtures.
    #[test]
    fn refuses_nothing_that_dicom_object_parses() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let dirs = [
            root.join(".venv/lib/python3.11/site-packages/pydicom/data/test_files"),
            root.join("tests/fixtures/cli"),
            root.join("tests/fixtures/input"),
        ];
        let mut walked = 0;
        let mut disagreements = Vec::new();
        for dir in &dirs {
            let entries =
                std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(bytes) = std::fs::read(&path) else {
                    continue;
                };
                let Some(framing) = sniff(&bytes) else {
                    continue;
                };
                walked += 1;
                let verdict = walk(
                    &mut BufReader::new(std::io::Cursor::new(bytes)),
                    entry.metadata().map(|m| m.len()).unwrap_or(0),
                    framing,
                );
                let Err(refusal) = verdict else { continue };
                let preamble = match framing {
                    Framing::Preamble => ReadPreamble::Always,
                    Framing::NoPreamble => ReadPreamble::Never,
                };
                let parsed = OpenFileOptions::new()
                    .read_preamble(preamble)
                    .open_file(&path);
                if parsed.is_ok() {
                    disagreements.push(format!("{}: {}", path.display(), describe(&refusal)));
                }
            }
        }
        assert!(walked > 50, "only {walked} DICOM files found in {dirs:?}");
        assert!(disagreements.is_empty(), "{disagreements:#?}");
    }
}
