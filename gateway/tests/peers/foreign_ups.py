"""A foreign UPS for the gateway's tests: a pymodbus Modbus TCP server with a register map
that is none of Firebreak's built-ins (the "ACME 9000" of the example configuration).

Input registers (0-based protocol addresses):
  10      status word, bit 3 = on battery
  12, 13  runtime remaining in seconds, u32, LOW word first
  20      battery temperature, i16, 0.1 degC
Every other address answers exception 02 (illegal data address).

usage: foreign_ups.py PORT [--on-battery] [--runtime SECONDS] [--temperature DECI_C]
       foreign_ups.py --serial /dev/pts/N [--baud 19200] [--unit 7] [--parity E] …   (Modbus RTU)
Prints "listening" on stdout once it serves.
"""

import argparse
import warnings
import asyncio
import sys

from pymodbus.datastore import ModbusDeviceContext, ModbusServerContext, ModbusSparseDataBlock
from pymodbus import FramerType
from pymodbus.server import StartAsyncSerialServer, StartAsyncTcpServer


def main() -> None:
    warnings.simplefilter("ignore")  # pymodbus 3.x deprecation notices about its v4 API
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int, nargs="?")
    p.add_argument("--serial")
    p.add_argument("--baud", type=int, default=19200)
    p.add_argument("--unit", type=int, default=1)
    # Linux PTYs refuse even and odd parity (EINVAL from tcsetattr): tests on socat PTYs use N.
    p.add_argument("--parity", choices=["N", "E", "O"], default="E")
    p.add_argument("--on-battery", action="store_true")
    p.add_argument("--runtime", type=int, default=1_234_567)
    p.add_argument("--temperature", type=int, default=253)
    a = p.parse_args()
    runtime = a.runtime & 0xFFFFFFFF
    registers = {
        10: (1 << 3) if a.on_battery else 0,
        12: runtime & 0xFFFF,
        13: runtime >> 16,
        20: a.temperature & 0xFFFF,
    }
    # A sparse block: like many real devices, reading an unmapped address (a gap) is
    # exception 02. pymodbus 3.16 maps block address N to protocol address N.
    block = ModbusSparseDataBlock(registers)
    device = ModbusDeviceContext(ir=block, hr=ModbusSparseDataBlock({0: 0}))
    context = ModbusServerContext(devices={a.unit: device}, single=False)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(0.3, lambda: print("listening", flush=True))
        if a.serial:
            await StartAsyncSerialServer(
                context=context,
                port=a.serial,
                framer=FramerType.RTU,
                baudrate=a.baud,
                parity=a.parity,
                stopbits=1,
                bytesize=8,
            )
        else:
            await StartAsyncTcpServer(context=context, address=("127.0.0.1", a.port))

    asyncio.run(serve())


if __name__ == "__main__":
    sys.exit(main())
