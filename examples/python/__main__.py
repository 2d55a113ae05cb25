"""A developer laptop reached over SSH, provisioned with kilo by KiloHost (the generated Python SDK)."""

import pulumi
import pulumi_kilo_fleet as kilo_fleet

cfg = pulumi.Config()

laptop = kilo_fleet.KiloHost(
    "alice-laptop",
    pooler_base_url=cfg.require("poolerBaseUrl"),
    api_key=cfg.require_secret("codexPoolerApiKey"),
    ssh=kilo_fleet.SshHostArgs(
        host="alice-laptop.corp.example.com",
        user="alice",
        host_key=cfg.require("hostKey"),
        connect_attempts=2,
    ),
    ssh_private_key=cfg.require_secret("sshPrivateKey"),
    kilo_version="7.7.7",
    smoke_check=kilo_fleet.SmokeCheckArgs(level=kilo_fleet.SmokeCheckLevel.POOL),
)

pulumi.export("kiloVersion", laptop.kilo_version)
pulumi.export("configPath", laptop.config_path)
