//! The mps2-an386 board: CMSDK UARTs, SysTick, the FPGA LEDs, the CMSDK watchdog.
//!
//! Addresses and interrupt numbers from Arm's *Application Note AN386* (as QEMU models it,
//! `hw/arm/mps2.c`): UART0 0x4000_4000 (RX interrupt 0), UART1 0x4000_5000 (RX interrupt 2),
//! UART2 0x4000_6000 (RX interrupt 4), watchdog 0x4000_8000, FPGA I/O (LEDs) 0x4002_8000; the
//! system clock is 25 MHz. UART0 carries the feed, UART1 RTU port A, UART2 RTU port B: QEMU
//! gives the first `-serial` to UART0, the second to UART1, the third to UART2 (a UART with
//! no `-serial` is there, silent).

use core::convert::Infallible;
use core::fmt::Write as _;
use core::mem::MaybeUninit;
use core::ptr::{addr_of, addr_of_mut, read_volatile, write_volatile};
use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::NVIC;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::{entry, exception};
use embedded_hal::digital::{ErrorType as PinErrorType, OutputPin, StatefulOutputPin};
use embedded_io::{ErrorType, Read, ReadReady, Write};
use firebreak_firmware::feed::Reply;
use firebreak_firmware::modbus::{Clock, FrameTiming, PortCounters, RtuServer};
use firebreak_firmware::node::VERSION;
use firebreak_firmware::{Action, Board, Port, ResetReason, RtuPorts, Runner, Watchdog};
use panic_halt as _;

/// The system clock.
const SYSCLK_HZ: u32 = 25_000_000;
/// The nominal line speed (QEMU's UART does not keep it).
const BAUD: u32 = 19_200;
/// The Modbus unit address.
const UNIT: u8 = 1;
/// The silence that ends a frame. The emulated UART delivers bytes when QEMU's I/O thread
/// gets to them, not at a baud rate, so a loaded host can pause a frame for milliseconds:
/// 20 ms instead of 3.5 characters (2 ms at 19200 baud). Masters wait far longer for answers.
const EMULATED_GAP_US: u32 = 20_000;

const UART0: usize = 0x4000_4000;
const UART1: usize = 0x4000_5000;
const UART2: usize = 0x4000_6000;
const WATCHDOG: usize = 0x4000_8000;
const FPGAIO_LED: usize = 0x4002_8000;

// CMSDK APB UART registers and bits.
const DATA: usize = 0x00;
const STATE: usize = 0x04;
const CTRL: usize = 0x08;
const INTCLEAR: usize = 0x0C;
const BAUDDIV: usize = 0x10;
const STATE_TX_FULL: u32 = 1 << 0;
const STATE_RX_FULL: u32 = 1 << 1;
const CTRL_TX_EN: u32 = 1 << 0;
const CTRL_RX_EN: u32 = 1 << 1;
const CTRL_RX_INT_EN: u32 = 1 << 3;
const INT_RX: u32 = 1 << 1;

fn read_reg(address: usize) -> u32 {
    // SAFETY: only called with the board's MMIO register addresses above.
    unsafe { read_volatile(address as *const u32) }
}

fn write_reg(address: usize, value: u32) {
    // SAFETY: only called with the board's MMIO register addresses above.
    unsafe { write_volatile(address as *mut u32, value) }
}

/// A CMSDK APB UART, as `embedded-io`.
struct Uart {
    base: usize,
}

impl Uart {
    fn new(base: usize) -> Uart {
        write_reg(base + BAUDDIV, SYSCLK_HZ / BAUD);
        write_reg(base + CTRL, CTRL_TX_EN | CTRL_RX_EN | CTRL_RX_INT_EN);
        // Whatever the receiver holds is from before the reset: drop it. On QEMU this read
        // also hands the UART what the host side held back while the node was hung (QEMU
        // loses no byte, a real UART overruns), so those stale bytes arrive now, as a frame of
        // their own, instead of glued to the first request after the reboot.
        let _ = read_reg(base + DATA);
        Uart { base }
    }

    fn try_read(&mut self) -> Option<u8> {
        (read_reg(self.base + STATE) & STATE_RX_FULL != 0).then(|| read_reg(self.base + DATA) as u8)
    }
}

impl ErrorType for Uart {
    type Error = Infallible;
}

impl Read for Uart {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        let mut n = 0;
        for slot in buf.iter_mut() {
            match self.try_read() {
                Some(b) => {
                    *slot = b;
                    n += 1;
                }
                None if n > 0 => break,
                None => cortex_m::asm::nop(),
            }
        }
        Ok(n)
    }
}

impl ReadReady for Uart {
    fn read_ready(&mut self) -> Result<bool, Infallible> {
        Ok(read_reg(self.base + STATE) & STATE_RX_FULL != 0)
    }
}

impl Write for Uart {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        for &b in buf {
            while read_reg(self.base + STATE) & STATE_TX_FULL != 0 {}
            write_reg(self.base + DATA, u32::from(b));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}

/// The alarm relay: the FPGA's LED0 (a relay driver on a real board).
struct Relay;

impl PinErrorType for Relay {
    type Error = Infallible;
}

impl OutputPin for Relay {
    fn set_low(&mut self) -> Result<(), Infallible> {
        write_reg(FPGAIO_LED, read_reg(FPGAIO_LED) & !1);
        Ok(())
    }

    fn set_high(&mut self) -> Result<(), Infallible> {
        write_reg(FPGAIO_LED, read_reg(FPGAIO_LED) | 1);
        Ok(())
    }
}

impl StatefulOutputPin for Relay {
    fn is_set_high(&mut self) -> Result<bool, Infallible> {
        Ok(read_reg(FPGAIO_LED) & 1 != 0)
    }

    fn is_set_low(&mut self) -> Result<bool, Infallible> {
        Ok(read_reg(FPGAIO_LED) & 1 == 0)
    }
}

/// The CMSDK APB watchdog: an interrupt after 2 s without a feed, a reset 2 s later.
struct CmsdkWatchdog;

const WDOG_LOAD: usize = WATCHDOG;
const WDOG_CTRL: usize = WATCHDOG + 0x08;
const WDOG_INTCLR: usize = WATCHDOG + 0x0C;
const WDOG_LOCK: usize = WATCHDOG + 0xC00;
const WDOG_UNLOCK_KEY: u32 = 0x1ACC_E551;

impl CmsdkWatchdog {
    fn start() -> CmsdkWatchdog {
        write_reg(WDOG_LOCK, WDOG_UNLOCK_KEY);
        write_reg(WDOG_LOAD, 2 * SYSCLK_HZ);
        // INTEN | RESEN.
        write_reg(WDOG_CTRL, 0b11);
        write_reg(WDOG_LOCK, 0);
        CmsdkWatchdog
    }
}

impl Watchdog for CmsdkWatchdog {
    fn feed(&mut self) {
        write_reg(WDOG_LOCK, WDOG_UNLOCK_KEY);
        write_reg(WDOG_INTCLR, 1);
        write_reg(WDOG_LOCK, 0);
    }
}

/// Milliseconds since boot, counted by SysTick.
static TICKS_MS: AtomicU32 = AtomicU32::new(0);
const SYSTICK_RELOAD: u32 = SYSCLK_HZ / 1000 - 1;

#[exception]
fn SysTick() {
    TICKS_MS.fetch_add(1, Ordering::Relaxed);
}

/// The CMSDK watchdog's first expiry: mps2 boards route its interrupt to the NMI. The main
/// loop has not fed it for 2 s; leave the interrupt asserted (no `WDOGINTCLR`), so the
/// watchdog's second expiry, 2 s later, resets the board.
#[exception]
unsafe fn NonMaskableInt() {}

/// Every device interrupt lands here (only the UART receive interrupts are enabled): clear
/// them; the main loop, woken from `wfi`, reads the bytes.
#[exception]
unsafe fn DefaultHandler(_irqn: i16) {
    write_reg(UART0 + INTCLEAR, INT_RX);
    write_reg(UART1 + INTCLEAR, INT_RX);
    write_reg(UART2 + INTCLEAR, INT_RX);
}

/// UART receive interrupts, for the NVIC: UART0's (the feed), UART1's (RTU port A), UART2's
/// (RTU port B).
#[derive(Clone, Copy)]
enum UartRx {
    Feed = 0,
    RtuA = 2,
    RtuB = 4,
}

// SAFETY: the numbers are the board's device interrupt numbers.
unsafe impl cortex_m::interrupt::InterruptNumber for UartRx {
    fn number(self) -> u16 {
        self as u16
    }
}

/// µs since boot: SysTick milliseconds, extended to 64 bits, plus the elapsed part of the tick.
struct SysClock {
    wraps: u64,
    last_ms: u32,
}

impl SysClock {
    fn now_ms(&mut self) -> u64 {
        self.now_us() / 1000
    }
}

impl Clock for SysClock {
    fn now_us(&mut self) -> u64 {
        let (ms, elapsed) = loop {
            let ms = TICKS_MS.load(Ordering::Relaxed);
            let current = cortex_m::peripheral::SYST::get_current();
            if TICKS_MS.load(Ordering::Relaxed) == ms {
                break (ms, SYSTICK_RELOAD.saturating_sub(current));
            }
        };
        if ms < self.last_ms {
            self.wraps += 1;
        }
        self.last_ms = ms;
        ((self.wraps << 32) | u64::from(ms)) * 1000 + u64::from(elapsed / (SYSCLK_HZ / 1_000_000))
    }
}

/// A word RAM keeps across a warm reset (cortex-m-rt does not initialise `.uninit`), read
/// once at boot. QEMU starts with RAM zeroed. The mps2 has no reset-cause register, so the word
/// is the only witness: [`BOOTED_MAGIC`] (a boot happened before, the reset that followed is
/// unknown) or [`WATCHDOG_MAGIC`] (the node hung on purpose, a watchdog reset was coming). A
/// real board reads its reset-cause register instead (RCC_CSR on an STM32F4, RESETREAS on an
/// nRF52), which tells a watchdog, a brown-out and the reset pin apart by itself.
#[unsafe(link_section = ".uninit.FIREBREAK_BOOTED")]
static mut BOOTED: MaybeUninit<u32> = MaybeUninit::uninit();
const BOOTED_MAGIC: u32 = 0xF12E_B00D;
const WATCHDOG_MAGIC: u32 = 0xF12E_D06E;

fn boot_word(value: u32) {
    // SAFETY: a plain volatile write of a u32 into RAM reserved for it; only `main`'s
    // thread touches it.
    unsafe { write_volatile(addr_of_mut!(BOOTED).cast::<u32>(), value) }
}

fn reset_reason() -> ResetReason {
    // SAFETY: read once, here, before anything else runs; any bit pattern is a valid u32.
    let word = unsafe { read_volatile(addr_of!(BOOTED).cast::<u32>()) };
    boot_word(BOOTED_MAGIC);
    match word {
        WATCHDOG_MAGIC => ResetReason::Watchdog,
        BOOTED_MAGIC => ResetReason::Unknown,
        _ => ResetReason::PowerOn,
    }
}

/// Marks the next boot as the watchdog's.
fn expect_watchdog_reset() {
    boot_word(WATCHDOG_MAGIC);
}

unsafe extern "C" {
    /// The top of the stack (cortex-m-rt's link.x).
    static _stack_start: u32;
    /// The lowest address the stack may reach: the end of the statics.
    static _stack_end: u32;
}

/// The most stack used since boot, in bytes: cortex-m-rt painted it with
/// `STACK_PAINT_VALUE` before `main`, and the paint is gone where the stack has been.
fn stack_peak() -> usize {
    let top = (&raw const _stack_start) as usize;
    let mut at = (&raw const _stack_end) as usize;
    // SAFETY: every word between the end of the statics and the top of the stack is RAM.
    while at < top && unsafe { read_volatile(at as *const u32) } == cortex_m_rt::STACK_PAINT_VALUE {
        at += 4;
    }
    top - at
}

fn say(uart: &mut Uart, line: &str) {
    let _ = uart.write_all(line.as_bytes());
    let _ = uart.write_all(b"\n");
}

/// The feed UART as the runner writes to it, with the Modbus counters of the moment.
struct Console<'a> {
    uart: &'a mut Uart,
    link: PortCounters,
}

impl Board for Console<'_> {
    fn say(&mut self, line: &str) {
        say(self.uart, line);
    }

    fn link_counters(&mut self) -> PortCounters {
        self.link
    }

    fn status_fields(&mut self, status: &mut Reply) {
        let _ = write!(status, " stack_peak={}", stack_peak());
    }
}

/// `hang` on the feed: a hung main loop. Nothing is served or fed any more, so the watchdog
/// bites — its interrupt (the NMI) after 2 s, the reset 2 s later — and the image boots again.
/// The boot word says a watchdog reset is coming, so the next boot reports it.
fn hang() -> ! {
    expect_watchdog_reset();
    loop {
        cortex_m::asm::wfi();
    }
}

/// The node's state: in a static, so it is counted in the image's RAM figures and not moved
/// about on the stack.
struct State {
    runner: Runner<Relay>,
    ports: RtuPorts,
}

/// Everything the node keeps, built at compile time into a static: nothing large is built
/// or moved on the stack, and the RAM figures count it.
static mut NODE_STATE: State = State {
    runner: Runner::new(Relay),
    ports: RtuPorts::new(
        RtuServer::new(UNIT, FrameTiming::from_gap_us(EMULATED_GAP_US)),
        RtuServer::new(UNIT, FrameTiming::from_gap_us(EMULATED_GAP_US)),
    ),
};

#[entry]
fn main() -> ! {
    let reason = reset_reason();
    let Some(mut cp) = cortex_m::Peripherals::take() else {
        loop {
            cortex_m::asm::wfi();
        }
    };
    cp.SYST.set_clock_source(SystClkSource::Core);
    cp.SYST.set_reload(SYSTICK_RELOAD);
    cp.SYST.clear_current();
    cp.SYST.enable_interrupt();
    cp.SYST.enable_counter();

    let mut feed_uart = Uart::new(UART0);
    let mut rtu_a = Uart::new(UART1);
    let mut rtu_b = Uart::new(UART2);
    // SAFETY: the handler for these interrupts (DefaultHandler) only clears them.
    unsafe {
        NVIC::unmask(UartRx::Feed);
        NVIC::unmask(UartRx::RtuA);
        NVIC::unmask(UartRx::RtuB);
    }
    let mut watchdog = CmsdkWatchdog::start();
    let mut clock = SysClock {
        wraps: 0,
        last_ms: 0,
    };

    // SAFETY: `main` runs once and never returns, no interrupt handler touches NODE_STATE:
    // this is the only reference to it, ever. (A raw pointer first: a direct `&mut` to a
    // `static mut` is refused by the 2024 edition.)
    #[allow(clippy::deref_addrof)]
    let State { runner, ports } = unsafe { &mut *(&raw mut NODE_STATE) };
    let Ok(()) = runner.start(reason);

    let mut banner = Reply::new();
    let _ = write!(
        banner,
        "firebreak-node-qemu {}.{}.{} unit={UNIT} reset={} ready",
        VERSION.0,
        VERSION.1,
        VERSION.2,
        reason.code()
    );
    say(&mut feed_uart, &banner);

    loop {
        // Feed lines in order; none while a `clock` step still has cycles to run (the byte
        // waits in the UART, QEMU holds the rest).
        while !runner.busy()
            && let Some(b) = feed_uart.try_read()
        {
            let mut console = Console {
                uart: &mut feed_uart,
                link: ports.counters(),
            };
            if runner.push(b, clock.now_ms(), &mut console) == Action::Hang {
                hang();
            }
        }

        // Each RTU port gets its turn every pass, a bounded one: a bus that never falls
        // silent cannot keep the other waiting (firebreak_firmware::ports).
        let Ok(()) = ports.serve(Port::A, &mut rtu_a, &mut clock, runner.node_mut());
        let Ok(()) = ports.serve(Port::B, &mut rtu_b, &mut clock, runner.node_mut());

        let mut console = Console {
            uart: &mut feed_uart,
            link: ports.counters(),
        };
        runner.poll(clock.now_ms(), &mut console);
        watchdog.feed();
        // Until the next millisecond tick or a received byte, unless cycles or bytes are
        // waiting.
        let waiting = [&mut feed_uart, &mut rtu_a, &mut rtu_b]
            .into_iter()
            .any(|u| u.read_ready().unwrap_or(true));
        if !runner.busy() && !waiting {
            cortex_m::asm::wfi();
        }
    }
}
