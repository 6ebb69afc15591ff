"""CloudLab profile for corekv: N bare-metal nodes on one 10 Gb LAN.

Nodes are named node0..node{N-1}; cloudlab/run-cluster.sh uses node0..node{S-1}
as servers and the next C nodes as clients (the seed project's layout). The
seed's headline numbers were taken on 8 x m510 (Xeon D-1548, 10 GbE).

At boot every node runs cloudlab/setup-node.sh from the repository if it is
present (clone the repo into your NFS home, or set the repository parameter so
the profile's source tree is at /local/repository).
"""

import geni.portal as portal
import geni.rspec.pg as pg

pc = portal.context

pc.defineParameter("node_count", "Number of nodes", portal.ParameterType.INTEGER, 8,
                   longDescription="node0..node{N-1}; the seed's 4+4 run needs 8.")
pc.defineParameter("hardware_type", "Hardware type", portal.ParameterType.NODETYPE, "m510",
                   longDescription="m510: 8 cores / 16 threads, 64 GB, 10 GbE (the seed's).")
pc.defineParameter("image", "Disk image", portal.ParameterType.IMAGE,
                   "urn:publicid:IDN+emulab.net+image+emulab-ops//UBUNTU22-64-STD",
                   longDescription="Ubuntu 22.04 stock image.")
pc.defineParameter("setup_args", "setup-node.sh arguments", portal.ParameterType.STRING, "",
                   advanced=True,
                   longDescription="e.g. --rust to install a Rust toolchain on every node.")

params = pc.bindParameters()
if params.node_count < 2:
    pc.reportError(portal.ParameterError("Need at least 2 nodes (1 server + 1 client).",
                                         ["node_count"]))
pc.verifyParameters()

request = pc.makeRequestRSpec()

lan = request.LAN("lan")
lan.bandwidth = 10000000  # kbit/s = 10 Gb
lan.best_effort = False
lan.vlan_tagging = False

# Runs as root at every boot; setup-node.sh is idempotent.
SETUP = ("for r in /local/repository /users/*/corekv; do "
         "if [ -x \"$r/cloudlab/setup-node.sh\" ]; then "
         "\"$r/cloudlab/setup-node.sh\" %s > /var/tmp/corekv-setup.log 2>&1; break; fi; "
         "done; true") % params.setup_args

for i in range(params.node_count):
    node = request.RawPC("node%d" % i)
    node.hardware_type = params.hardware_type
    node.disk_image = params.image
    iface = node.addInterface("if%d" % i)
    iface.addAddress(pg.IPv4Address("10.10.1.%d" % (i + 1), "255.255.255.0"))
    lan.addInterface(iface)
    node.addService(pg.Execute(shell="bash", command=SETUP))

pc.printRequestRSpec(request)
