//! Register descriptors and device profiles: how a device's Modbus registers map onto
//! canonical [`Signal`]s.
//!
//! A [`DeviceProfile`] is a table of [`RegisterDescriptor`]s. The built-in profiles are `const`
//! tables ([`SENSOR_NODE`](crate::SENSOR_NODE), [`GENERIC_UPS`](crate::GENERIC_UPS), [`GENERIC_PDU`](crate::GENERIC_PDU)) shared by the firmware, the
//! gateway, the HIL simulators and `docs/register-maps.md`; a gateway can also build a profile
//! at run time from a site configuration.

use core::fmt;

use crate::signal::{Signal, SignalKind};

/// The four Modbus data tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum Table {
    /// Coils: read-write bits, read with 01 (0x01) Read Coils.
    Coil,
    /// Discrete inputs: read-only bits, read with 02 (0x02) Read Discrete Inputs.
    DiscreteInput,
    /// Holding registers: read-write words, read with 03 (0x03) Read Holding Registers.
    Holding,
    /// Input registers: read-only words, read with 04 (0x04) Read Input Registers.
    Input,
}

impl Table {
    /// All tables, in the order read plans list them.
    pub const ALL: [Table; 4] = [
        Table::Coil,
        Table::DiscreteInput,
        Table::Holding,
        Table::Input,
    ];

    /// Whether the table holds single bits (coils, discrete inputs) rather than 16-bit words.
    pub const fn is_bits(self) -> bool {
        matches!(self, Self::Coil | Self::DiscreteInput)
    }

    /// The Modbus function code that reads this table.
    pub const fn read_function(self) -> u8 {
        match self {
            Self::Coil => 0x01,
            Self::DiscreteInput => 0x02,
            Self::Holding => 0x03,
            Self::Input => 0x04,
        }
    }

    /// The configuration name (`"holding"`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Coil => "coil",
            Self::DiscreteInput => "discrete-input",
            Self::Holding => "holding",
            Self::Input => "input",
        }
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// How the register (or bit) is to be read as a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum DataType {
    /// A coil or discrete input: 0 or 1.
    Bool,
    /// Bit `n` (0 = least significant) of one 16-bit register: 0 or 1.
    Bit(u8),
    /// One register, unsigned.
    U16,
    /// One register, two's complement.
    I16,
    /// Two registers, unsigned (see [`WordOrder`]).
    U32,
    /// Two registers, two's complement.
    I32,
    /// Two registers, IEEE 754 single precision.
    F32,
}

impl DataType {
    /// How many registers (or bits) a value of this type occupies.
    pub const fn width(self) -> u16 {
        match self {
            Self::Bool | Self::Bit(_) | Self::U16 | Self::I16 => 1,
            Self::U32 | Self::I32 | Self::F32 => 2,
        }
    }
}

/// The order of the two registers of a 32-bit value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum WordOrder {
    /// The register at the lower address holds the high 16 bits ("ABCD"; Modbus convention).
    #[default]
    HighFirst,
    /// The register at the lower address holds the low 16 bits ("CDAB").
    LowFirst,
}

/// The order of the two bytes inside each register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum ByteOrder {
    /// High byte first, as the Modbus specification sends it ("AB").
    #[default]
    Big,
    /// Bytes swapped ("BA"), as some devices do.
    Swapped,
}

/// The most raw values one descriptor can declare as sentinels.
pub const MAX_SENTINELS: usize = 4;

/// Raw values that mean "no sensor" or "sensor broken" rather than a reading, compared with
/// the raw register contents (before sign, scale and offset): `0x7FFF`, `0xFFFF`, `0x8000`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sentinels {
    values: [u32; MAX_SENTINELS],
    len: u8,
}

impl Sentinels {
    /// No sentinel values.
    pub const NONE: Sentinels = Sentinels {
        values: [0; MAX_SENTINELS],
        len: 0,
    };

    /// One more sentinel value; `None` if there are already [`MAX_SENTINELS`].
    pub const fn with(self, raw: u32) -> Option<Sentinels> {
        if self.len as usize >= MAX_SENTINELS {
            return None;
        }
        let mut values = self.values;
        #[allow(clippy::indexing_slicing)] // len < MAX_SENTINELS was checked above
        {
            values[self.len as usize] = raw;
        }
        Some(Sentinels {
            values,
            len: self.len + 1,
        })
    }

    /// The sentinel values.
    pub fn as_slice(&self) -> &[u32] {
        self.values.get(..self.len as usize).unwrap_or(&[])
    }

    /// Whether `raw` is one of them.
    pub fn contains(&self, raw: u32) -> bool {
        self.as_slice().contains(&raw)
    }
}

/// The range of engineering values (after scale and offset) a sensor can physically report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValidRange {
    /// The lowest valid value.
    pub min: f32,
    /// The highest valid value.
    pub max: f32,
}

impl ValidRange {
    /// Any finite value.
    pub const ANY: ValidRange = ValidRange {
        min: f32::MIN,
        max: f32::MAX,
    };

    /// Whether `value` is inside the range (bounds included).
    pub fn contains(&self, value: f32) -> bool {
        value >= self.min && value <= self.max
    }
}

/// One value in a device's register map, and the canonical signal it feeds.
///
/// Engineering value = raw × `scale` + `offset`, in the signal's canonical unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RegisterDescriptor {
    /// The signal the value feeds.
    pub signal: Signal,
    /// Which instance of the signal on the device (probe 0..7, phase 0..2).
    pub channel: u8,
    /// Which table the value lives in.
    pub table: Table,
    /// The 0-based protocol address of the first register or bit.
    pub address: u16,
    /// How to read it.
    pub data_type: DataType,
    /// Register order of 32-bit values.
    pub word_order: WordOrder,
    /// Byte order inside each register.
    pub byte_order: ByteOrder,
    /// Multiplier from raw to engineering value (f64, so that 253 × 0.1 is 25.3).
    pub scale: f64,
    /// Added after scaling.
    pub offset: f64,
    /// Values outside this range are [`Quality::OutOfRange`](crate::Quality::OutOfRange).
    pub valid: ValidRange,
    /// Raw values that mean "no sensor" ([`Quality::SensorFault`](crate::Quality::SensorFault)).
    /// For [`DataType::Bit`] values they are compared with the whole register, so a status
    /// word of all ones is no reading of any of its bits.
    pub sentinels: Sentinels,
}

impl RegisterDescriptor {
    /// A descriptor with scale 1, offset 0, channel 0, standard word and byte order, any
    /// value valid and no sentinel. Refine it with the `const` builder methods.
    pub const fn new(signal: Signal, table: Table, address: u16, data_type: DataType) -> Self {
        Self {
            signal,
            channel: 0,
            table,
            address,
            data_type,
            word_order: WordOrder::HighFirst,
            byte_order: ByteOrder::Big,
            scale: 1.0,
            offset: 0.0,
            valid: ValidRange::ANY,
            sentinels: Sentinels::NONE,
        }
    }

    /// Sets the channel.
    pub const fn channel(mut self, channel: u8) -> Self {
        self.channel = channel;
        self
    }

    /// Sets scale and offset.
    pub const fn scaled(mut self, scale: f64, offset: f64) -> Self {
        self.scale = scale;
        self.offset = offset;
        self
    }

    /// Sets the valid range of engineering values.
    pub const fn valid(mut self, min: f32, max: f32) -> Self {
        self.valid = ValidRange { min, max };
        self
    }

    /// Adds a sentinel raw value. Adding more than [`MAX_SENTINELS`] keeps the first ones;
    /// [`DeviceProfile::validate`] cannot see that, so `const` profiles stay within the limit.
    pub const fn sentinel(mut self, raw: u32) -> Self {
        if let Some(s) = self.sentinels.with(raw) {
            self.sentinels = s;
        }
        self
    }

    /// Sets word and byte order.
    pub const fn order(mut self, word_order: WordOrder, byte_order: ByteOrder) -> Self {
        self.word_order = word_order;
        self.byte_order = byte_order;
        self
    }

    /// The first address after the value (one past its last register or bit).
    pub const fn end(&self) -> u32 {
        self.address as u32 + self.data_type.width() as u32
    }

    /// Checks the descriptor on its own.
    pub fn validate(&self) -> Result<(), DescriptorError> {
        let bits = self.table.is_bits();
        let type_fits = match self.data_type {
            DataType::Bool => bits,
            DataType::Bit(n) => !bits && n < 16,
            _ => !bits,
        };
        if !type_fits {
            return Err(DescriptorError::TypeNotInTable {
                data_type: self.data_type,
                table: self.table,
            });
        }
        if self.end() > 0x1_0000 {
            return Err(DescriptorError::PastLastAddress {
                address: self.address,
            });
        }
        if !self.scale.is_finite() || self.scale == 0.0 || !self.offset.is_finite() {
            return Err(DescriptorError::BadScale);
        }
        if self.valid.min.is_nan() || self.valid.max.is_nan() || self.valid.min > self.valid.max {
            return Err(DescriptorError::BadRange);
        }
        if self.signal.kind() == SignalKind::State
            && !matches!(
                self.data_type,
                DataType::Bool | DataType::Bit(_) | DataType::U16
            )
        {
            return Err(DescriptorError::StateNeedsBit {
                signal: self.signal,
            });
        }
        Ok(())
    }
}

/// A device type's register map.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeviceProfile<'a> {
    /// The name configurations refer to (`"generic-ups"`).
    pub name: &'a str,
    /// One line for humans.
    pub description: &'a str,
    /// The values it exposes.
    pub registers: &'a [RegisterDescriptor],
}

impl DeviceProfile<'_> {
    /// Checks every descriptor, and that no two feed the same (signal, channel).
    pub fn validate(&self) -> Result<(), ProfileError> {
        for (i, d) in self.registers.iter().enumerate() {
            d.validate()
                .map_err(|error| ProfileError::Register { index: i, error })?;
            let earlier = self.registers.get(..i).unwrap_or(&[]);
            if earlier
                .iter()
                .any(|o| o.signal == d.signal && o.channel == d.channel)
            {
                return Err(ProfileError::Duplicate {
                    index: i,
                    signal: d.signal,
                    channel: d.channel,
                });
            }
        }
        Ok(())
    }
}

/// Why one descriptor cannot be used.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum DescriptorError {
    /// The data type cannot live in that table (a bool in a holding register, a u16 in coils).
    TypeNotInTable {
        /// The data type.
        data_type: DataType,
        /// The table.
        table: Table,
    },
    /// The value runs past address 65535.
    PastLastAddress {
        /// Its first address.
        address: u16,
    },
    /// The scale is zero or not finite, or the offset is not finite.
    BadScale,
    /// The valid range is empty or not a number.
    BadRange,
    /// A true/false signal must come from a bit, a coil, a discrete input or a u16.
    StateNeedsBit {
        /// The signal.
        signal: Signal,
    },
}

impl fmt::Display for DescriptorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::TypeNotInTable { data_type, table } => {
                write!(
                    f,
                    "data type {data_type:?} cannot be read from the {table} table"
                )
            }
            Self::PastLastAddress { address } => {
                write!(f, "value at address {address} runs past address 65535")
            }
            Self::BadScale => f.write_str("scale must be finite and not zero, offset finite"),
            Self::BadRange => f.write_str("valid range is empty or not a number"),
            Self::StateNeedsBit { signal } => write!(
                f,
                "signal {signal} is true/false: use a coil, a discrete input, a bit or a u16"
            ),
        }
    }
}

/// Why a profile cannot be used.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum ProfileError {
    /// The descriptor at `index` of [`DeviceProfile::registers`] is wrong.
    Register {
        /// Its index.
        index: usize,
        /// What is wrong with it.
        error: DescriptorError,
    },
    /// Two descriptors feed the same signal and channel.
    Duplicate {
        /// The index of the second one.
        index: usize,
        /// The signal.
        signal: Signal,
        /// The channel.
        channel: u8,
    },
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Register { index, error } => write!(f, "registers[{index}]: {error}"),
            Self::Duplicate {
                index,
                signal,
                channel,
            } => write!(
                f,
                "registers[{index}]: signal {signal} channel {channel} is already mapped"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for DescriptorError {}
#[cfg(feature = "std")]
impl std::error::Error for ProfileError {}
