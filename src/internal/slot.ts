/** Redis Cluster hash slots (CRC16/XMODEM of the key, or of its `{hash tag}`, modulo 16384). */

const table = (() => {
  const entries = new Uint16Array(256)
  for (let byte = 0; byte < 256; byte++) {
    let crc = byte << 8
    for (let bit = 0; bit < 8; bit++) {
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
    }
    entries[byte] = crc
  }
  return entries
})()

const crc16 = (bytes: Uint8Array): number => {
  let crc = 0
  for (const byte of bytes) {
    crc = ((crc << 8) & 0xffff) ^ table[((crc >> 8) ^ byte) & 0xff]!
  }
  return crc
}

/**
 * A key's `{hash tag}`: the non-empty part between its first `{` and the next `}`, or undefined.
 * (The braces are ASCII, so string and UTF-8 positions find the same part.)
 */
export const hashTagOf = (key: string): string | undefined => {
  const open = key.indexOf("{")
  if (open === -1) return undefined
  const close = key.indexOf("}", open + 1)
  return close === -1 || close === open + 1 ? undefined : key.slice(open + 1, close)
}

/** The cluster slot a key maps to. */
export const slotOf = (key: string): number => crc16(Buffer.from(hashTagOf(key) ?? key, "utf8")) % 16384
