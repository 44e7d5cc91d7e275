import platform

from nofrost_mm.utils.machine import cpu_name


def test_cpu_name_names_the_cpu():
    name = cpu_name()
    assert isinstance(name, str) and name.strip() == name and name
    try:
        with open('/proc/cpuinfo') as f:
            listed = [line.split(':', 1)[1].strip() for line in f if line.startswith('model name')]
    except OSError:
        listed = []
    assert name == (listed[0] if listed else platform.processor() or platform.machine())
