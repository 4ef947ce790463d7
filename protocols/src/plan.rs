//! Read planning: the fewest Modbus read requests that cover a profile's registers.

use core::fmt;

use crate::profile::{RegisterDescriptor, Table};

/// The most registers one 03/04 request may read (Modbus application protocol 1.1b3, 6.3).
pub const MAX_READ_REGISTERS: u16 = 125;
/// The most bits one 01/02 request may read (Modbus application protocol 1.1b3, 6.1).
pub const MAX_READ_BITS: u16 = 2000;

/// One Modbus read request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ReadRequest {
    /// The table, and so the function code.
    pub table: Table,
    /// The first address read.
    pub start: u16,
    /// How many registers or bits are read (1 or more).
    pub count: u16,
}

impl ReadRequest {
    /// One past the last address read.
    pub const fn end(&self) -> u32 {
        self.start as u32 + self.count as u32
    }

    /// Whether the request reads every register or bit of `d`.
    pub fn covers(&self, d: &RegisterDescriptor) -> bool {
        d.table == self.table && d.address >= self.start && d.end() <= self.end()
    }
}

impl fmt::Display for ReadRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02} {} {}..{}",
            self.table.read_function(),
            self.table,
            self.start,
            self.end()
        )
    }
}

/// How requests may be merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanOptions {
    /// Unused registers (or bits) that may be read to join two values into one request.
    pub max_gap: u16,
    /// The most registers one request may read; at most [`MAX_READ_REGISTERS`]. Some devices
    /// accept fewer.
    pub max_registers: u16,
    /// The most bits one request may read; at most [`MAX_READ_BITS`].
    pub max_bits: u16,
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self {
            max_gap: 8,
            max_registers: MAX_READ_REGISTERS,
            max_bits: MAX_READ_BITS,
        }
    }
}

impl PlanOptions {
    /// The request size limit for a table.
    pub const fn limit(&self, table: Table) -> u16 {
        if table.is_bits() {
            self.max_bits
        } else {
            self.max_registers
        }
    }
}

/// Why no plan could be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlanError {
    /// A request size limit is 0, or over the protocol's limit.
    BadLimit {
        /// The table kind the limit is for.
        bits: bool,
        /// The limit given.
        limit: u16,
    },
    /// A value is wider than the request size limit, or runs past address 65535.
    DoesNotFit {
        /// Its table.
        table: Table,
        /// Its address.
        address: u16,
    },
    /// The plan needs more requests than the output can hold.
    TooManyRequests {
        /// The output's capacity.
        capacity: usize,
    },
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BadLimit { bits: true, limit } => {
                write!(f, "bit read limit {limit} is not in 1..={MAX_READ_BITS}")
            }
            Self::BadLimit { bits: false, limit } => write!(
                f,
                "register read limit {limit} is not in 1..={MAX_READ_REGISTERS}"
            ),
            Self::DoesNotFit { table, address } => write!(
                f,
                "{table} value at address {address} does not fit in one request"
            ),
            Self::TooManyRequests { capacity } => {
                write!(f, "the plan needs more than {capacity} requests")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for PlanError {}

/// Plans the reads that cover every descriptor of `registers`.
///
/// Requests are listed by table (coils, discrete inputs, holding, input registers), then by
/// address. Each value lies whole inside one request; two values are read by one request when
/// at most `max_gap` unused addresses separate them and the request stays within the limit.
/// Descriptors may overlap (bits of one status word) and may come in any order. Pure: same
/// input, same plan.
pub fn plan_reads<const N: usize>(
    registers: &[RegisterDescriptor],
    options: &PlanOptions,
) -> Result<heapless::Vec<ReadRequest, N>, PlanError> {
    if !(1..=MAX_READ_REGISTERS).contains(&options.max_registers) {
        return Err(PlanError::BadLimit {
            bits: false,
            limit: options.max_registers,
        });
    }
    if !(1..=MAX_READ_BITS).contains(&options.max_bits) {
        return Err(PlanError::BadLimit {
            bits: true,
            limit: options.max_bits,
        });
    }
    let mut plan = heapless::Vec::new();
    for table in Table::ALL {
        let limit = u32::from(options.limit(table));
        let gap = u32::from(options.max_gap);
        let in_table = || registers.iter().filter(move |d| d.table == table);
        if let Some(d) =
            in_table().find(|d| d.end() > 0x1_0000 || d.end() - u32::from(d.address) > limit)
        {
            return Err(PlanError::DoesNotFit {
                table,
                address: d.address,
            });
        }
        loop {
            let uncovered =
                |d: &&RegisterDescriptor| !plan.iter().any(|r: &ReadRequest| r.covers(d));
            // Earlier requests covered every descriptor that starts before this one.
            let Some(start) = in_table().filter(uncovered).map(|d| d.address).min() else {
                break;
            };
            let begin = u32::from(start);
            let mut end = begin;
            // Grow the request while some uncovered value starts within the gap and fits.
            while let Some(next_end) = in_table()
                .filter(uncovered)
                .filter(|d| {
                    let a = u32::from(d.address);
                    a >= begin && a <= end + gap && d.end() > end && d.end() - begin <= limit
                })
                .map(|d| d.end())
                .max()
            {
                end = next_end;
            }
            let request = ReadRequest {
                table,
                start,
                // end - begin <= limit <= 2000, so it fits in u16.
                count: u16::try_from(end - begin).map_err(|_| PlanError::DoesNotFit {
                    table,
                    address: start,
                })?,
            };
            plan.push(request)
                .map_err(|_| PlanError::TooManyRequests { capacity: N })?;
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::{GENERIC_PDU, GENERIC_UPS, SENSOR_NODE};
    use crate::profile::DataType;
    use crate::signal::Signal;
    use proptest::prelude::*;
    use std::string::ToString;

    fn reg(table: Table, address: u16, data_type: DataType) -> RegisterDescriptor {
        RegisterDescriptor::new(Signal::RoomTemperature, table, address, data_type)
    }

    #[test]
    fn builtin_profiles_read_in_few_requests() {
        let o = PlanOptions::default();
        let ups = plan_reads::<8>(GENERIC_UPS.registers, &o).unwrap();
        assert_eq!(
            ups.as_slice(),
            &[ReadRequest {
                table: Table::Holding,
                start: 0,
                count: 7
            }]
        );
        let pdu = plan_reads::<8>(GENERIC_PDU.registers, &o).unwrap();
        assert_eq!(
            pdu.as_slice(),
            &[ReadRequest {
                table: Table::Input,
                start: 0,
                count: 4
            }]
        );
        let node = plan_reads::<8>(SENSOR_NODE.registers, &o).unwrap();
        assert_eq!(
            node.as_slice(),
            &[
                ReadRequest {
                    table: Table::Input,
                    start: 0,
                    count: 12
                },
                // Uptime (102-103), alarm state (107), reset reason (108), over the three
                // status registers between them: one request.
                ReadRequest {
                    table: Table::Input,
                    start: 102,
                    count: 7
                },
            ]
        );
    }

    #[test]
    fn gap_decides_merging() {
        let regs = [
            reg(Table::Holding, 0, DataType::U16),
            reg(Table::Holding, 5, DataType::U32),
        ];
        let tight = PlanOptions {
            max_gap: 3,
            ..PlanOptions::default()
        };
        assert_eq!(plan_reads::<4>(&regs, &tight).unwrap().len(), 2);
        let loose = PlanOptions {
            max_gap: 4,
            ..PlanOptions::default()
        };
        assert_eq!(
            plan_reads::<4>(&regs, &loose).unwrap().as_slice(),
            &[ReadRequest {
                table: Table::Holding,
                start: 0,
                count: 7
            }]
        );
    }

    #[test]
    fn long_runs_split_at_the_limit_without_splitting_a_value() {
        // 0..=123 single registers, then a u32 at 124..=125: it cannot join the first request.
        let mut regs: heapless::Vec<RegisterDescriptor, 200> = (0..124)
            .map(|a| reg(Table::Input, a, DataType::U16))
            .collect();
        regs.push(reg(Table::Input, 124, DataType::F32)).unwrap();
        let plan = plan_reads::<4>(&regs, &PlanOptions::default()).unwrap();
        assert_eq!(
            plan.as_slice(),
            &[
                ReadRequest {
                    table: Table::Input,
                    start: 0,
                    count: 124
                },
                ReadRequest {
                    table: Table::Input,
                    start: 124,
                    count: 2
                },
            ]
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let regs = [reg(Table::Holding, 0xFFFF, DataType::U32)];
        assert_eq!(
            plan_reads::<4>(&regs, &PlanOptions::default()),
            Err(PlanError::DoesNotFit {
                table: Table::Holding,
                address: 0xFFFF
            })
        );
        let bad = PlanOptions {
            max_registers: 126,
            ..PlanOptions::default()
        };
        assert_eq!(
            plan_reads::<4>(&[], &bad).unwrap_err().to_string(),
            "register read limit 126 is not in 1..=125"
        );
        let many: heapless::Vec<RegisterDescriptor, 8> = (0..3)
            .map(|i| reg(Table::Input, i * 100, DataType::U16))
            .collect();
        assert_eq!(
            plan_reads::<2>(&many, &PlanOptions::default()),
            Err(PlanError::TooManyRequests { capacity: 2 })
        );
    }

    fn arb_descriptor() -> impl Strategy<Value = RegisterDescriptor> {
        (0usize..4, 0u16..600, 0usize..5).prop_map(|(t, address, ty)| {
            let table = Table::ALL[t];
            let data_type = if table.is_bits() {
                DataType::Bool
            } else {
                [
                    DataType::U16,
                    DataType::I16,
                    DataType::U32,
                    DataType::F32,
                    DataType::Bit(3),
                ][ty]
            };
            reg(table, address, data_type)
        })
    }

    proptest! {
        #[test]
        fn plans_cover_everything_within_limits(
            regs in proptest::collection::vec(arb_descriptor(), 0..120),
            max_gap in 0u16..20,
            max_registers in 2u16..=125,
            max_bits in 1u16..=2000,
        ) {
            let o = PlanOptions { max_gap, max_registers, max_bits };
            let plan = plan_reads::<256>(&regs, &o).unwrap();
            for d in &regs {
                prop_assert!(plan.iter().any(|r| r.covers(d)), "{d:?} not covered by {plan:?}");
            }
            for r in &plan {
                prop_assert!(r.count >= 1 && r.count <= o.limit(r.table));
                prop_assert!(r.end() <= 0x1_0000);
                // Every request starts and ends on a value: nothing is read for nothing.
                prop_assert!(regs.iter().any(|d| d.table == r.table && d.address == r.start));
                prop_assert!(regs.iter().any(|d| r.covers(d) && d.end() == r.end()));
            }
            prop_assert!(plan.len() <= regs.len());
            // Locally minimal: no two neighbouring requests of one table could have been one.
            for w in plan.windows(2) {
                let (a, b) = (w[0], w[1]);
                if a.table == b.table && b.start as u32 >= a.end() {
                    let gap = b.start as u32 - a.end();
                    let joined = b.end() - a.start as u32;
                    prop_assert!(
                        gap > u32::from(max_gap) || joined > u32::from(o.limit(a.table)),
                        "{a} and {b} could be one request"
                    );
                }
            }
        }
    }
}
