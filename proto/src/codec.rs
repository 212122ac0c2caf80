//! The codec of every hookwire service: prost, as tonic's default, but with 256-byte first buffers instead of 8 KiB.
//! Every open `Connect` session keeps one buffer for what it reads and one for what it writes for as long as it
//! lasts; with thousands of idle devices those buffers were a third of the kernel's memory per device
//! (docs/performance.md). A buffer still grows for a larger message.
//!
//! A message that does not decode (a string field that is not UTF-8, a truncated field) is the caller's fault:
//! it fails with `INVALID_ARGUMENT` and prost's description of the field, where tonic's decoder says `INTERNAL`.

use std::marker::PhantomData;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstDecoder, ProstEncoder};

/// The first size of a call's read and write buffers.
pub const BUFFER_BYTES: usize = 256;
/// Encoded bytes after which a streaming call yields to the transport (tonic's default).
const YIELD_THRESHOLD_BYTES: usize = 32 * 1024;

/// prost encoding and decoding with [`BUFFER_BYTES`] first buffers.
#[derive(Debug, Clone)]
pub struct LeanCodec<T, U> {
    _types: PhantomData<(T, U)>,
}

impl<T, U> Default for LeanCodec<T, U> {
    fn default() -> Self {
        LeanCodec { _types: PhantomData }
    }
}

fn buffer_settings() -> BufferSettings {
    BufferSettings::new(BUFFER_BYTES, YIELD_THRESHOLD_BYTES)
}

impl<T, U> Codec for LeanCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = LeanDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(buffer_settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        LeanDecoder { inner: ProstDecoder::new(buffer_settings()) }
    }
}

/// prost decoding, with decode failures reported as `INVALID_ARGUMENT`.
#[derive(Debug)]
pub struct LeanDecoder<U> {
    inner: ProstDecoder<U>,
}

impl<U: prost::Message + Default> Decoder for LeanDecoder<U> {
    type Item = U;
    type Error = tonic::Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, tonic::Status> {
        // prost's only error is a message that does not decode; its text names the message and field at fault
        // (`PublishRequest.name: invalid string value: data is not UTF-8 encoded`).
        let type_name = std::any::type_name::<U>().rsplit("::").next().unwrap_or("message");
        U::decode(buf).map(Some).map_err(|error| {
            tonic::Status::invalid_argument(format!("message: not a valid {type_name} (frame refused): {error}"))
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.inner.buffer_settings()
    }
}
