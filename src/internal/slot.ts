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

const hashedPart = (key: Buffer): Buffer => {
  const open = key.indexOf(0x7b) // {
  if (open === -1) return key
  const close = key.indexOf(0x7d, open + 1) // }
  return close === -1 || close === open + 1 ? key : key.subarray(open + 1, close)
}

/** Whether a key has a `{hash tag}`: a non-empty part between its first `{` and the next `}`. */
export const hasHashTag = (key: string): boolean => {
  const open = key.indexOf("{")
  if (open === -1) return false
  const close = key.indexOf("}", open + 1)
  return close !== -1 && close !== open + 1
}

/** The cluster slot a key maps to. */
export const slotOf = (key: string): number => crc16(hashedPart(Buffer.from(key, "utf8"))) % 16384
