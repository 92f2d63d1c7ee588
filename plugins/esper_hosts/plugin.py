"""Registers the built-in hosts."""

from esper_core.hookspecs import hookimpl
from esper_core.specs import HostSpec
from esper_hosts.gpt import GPT_SPEC
from esper_hosts.gpt import IMPAIRED_SPEC as GPT_IMPAIRED
from esper_hosts.resnet import IMPAIRED_SPEC, RESNET_SPEC
from esper_hosts.tiny_cnn import SPEC as TINY_CNN


@hookimpl
def esper_hosts() -> list[HostSpec]:
    return [RESNET_SPEC, IMPAIRED_SPEC, TINY_CNN, GPT_SPEC, GPT_IMPAIRED]
