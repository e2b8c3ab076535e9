MyType = "Job"
TargetType = "Machine"
ClusterId = 101
ProcId = 0
GlobalJobId = "htc-schedd.novalocal#101.0#1796370000"
Owner = "cmsuser"
User = "cmsuser@htc.dodas"
Cmd = "/home/cmsuser/analysis/run.sh"
Arguments = "--chunk 0"
JobUniverse = 5
JobStatus = 2
EnteredCurrentStatus = 1796370000
QDate = 1796370000
RequestCpus = 1
RequestMemory = 2000
RequestDisk = DiskUsage
DiskUsage = 1000
Requirements = (TARGET.Arch == "X86_64") && (TARGET.OpSys == "LINUX") && (TARGET.Disk >= RequestDisk) && (TARGET.Memory >= RequestMemory) && (TARGET.Cpus >= RequestCpus)

MyType = "Job"
TargetType = "Machine"
ClusterId = 101
ProcId = 1
GlobalJobId = "htc-schedd.novalocal#101.1#1796370000"
Owner = "cmsuser"
User = "cmsuser@htc.dodas"
Cmd = "/home/cmsuser/analysis/run.sh"
Arguments = "--chunk 1"
JobUniverse = 5
JobStatus = 2
EnteredCurrentStatus = 1796370001
QDate = 1796370000
RequestCpus = 1
RequestMemory = 2000
RequestDisk = DiskUsage
DiskUsage = 1000
Requirements = (TARGET.Arch == "X86_64") && (TARGET.OpSys == "LINUX") && (TARGET.Disk >= RequestDisk) && (TARGET.Memory >= RequestMemory) && (TARGET.Cpus >= RequestCpus)

MyType = "Job"
TargetType = "Machine"
ClusterId = 102
ProcId = 0
GlobalJobId = "htc-schedd.novalocal#102.0#1796370000"
Owner = "cmsuser"
User = "cmsuser@htc.dodas"
Cmd = "/home/cmsuser/analysis/run.sh"
Arguments = "--chunk 0"
JobUniverse = 5
JobStatus = 1
EnteredCurrentStatus = 1796370000
QDate = 1796370000
RequestCpus = 1
RequestMemory = 2000
RequestDisk = DiskUsage
DiskUsage = 1000
Requirements = (TARGET.Arch == "X86_64") && (TARGET.OpSys == "LINUX") && (TARGET.Disk >= RequestDisk) && (TARGET.Memory >= RequestMemory) && (TARGET.Cpus >= RequestCpus)

MyType = "Job"
TargetType = "Machine"
ClusterId = 102
ProcId = 1
GlobalJobId = "htc-schedd.novalocal#102.1#1796370000"
Owner = "cmsuser"
User = "cmsuser@htc.dodas"
Cmd = "/home/cmsuser/analysis/run.sh"
Arguments = "--chunk 1"
JobUniverse = 5
JobStatus = 1
EnteredCurrentStatus = 1796370001
QDate = 1796370000
RequestCpus = 1
RequestMemory = 2000
RequestDisk = DiskUsage
DiskUsage = 1000
Requirements = (TARGET.Arch == "X86_64") && (TARGET.OpSys == "LINUX") && (TARGET.Disk >= RequestDisk) && (TARGET.Memory >= RequestMemory) && (TARGET.Cpus >= RequestCpus)

MyType = "Job"
TargetType = "Machine"
ClusterId = 102
ProcId = 2
GlobalJobId = "htc-schedd.novalocal#102.2#1796370000"
Owner = "cmsuser"
User = "cmsuser@htc.dodas"
Cmd = "/home/cmsuser/analysis/run.sh"
Arguments = "--chunk 2"
JobUniverse = 5
JobStatus = 1
EnteredCurrentStatus = 1796370002
QDate = 1796370000
RequestCpus = 1
RequestMemory = 2000
RequestDisk = DiskUsage
DiskUsage = 1000
Requirements = (TARGET.Arch == "X86_64") && (TARGET.OpSys == "LINUX") && (TARGET.Disk >= RequestDisk) && (TARGET.Memory >= RequestMemory) && (TARGET.Cpus >= RequestCpus)

MyType = "Job"
TargetType = "Machine"
ClusterId = 103
ProcId = 0
GlobalJobId = "htc-schedd.novalocal#103.0#1796370000"
Owner = "cmsuser"
User = "cmsuser@htc.dodas"
Cmd = "/home/cmsuser/analysis/run.sh"
Arguments = "--chunk 0"
JobUniverse = 5
JobStatus = 1
EnteredCurrentStatus = 1796370000
QDate = 1796370000
RequestCpus = ifThenElse(MY.NeedsMore =?= true, 4, 2)
RequestMemory = 2000
RequestDisk = DiskUsage
DiskUsage = 1000
Requirements = (TARGET.Arch == "X86_64") && (TARGET.OpSys == "LINUX") && (TARGET.Disk >= RequestDisk) && (TARGET.Memory >= RequestMemory) && (TARGET.Cpus >= RequestCpus)

MyType = "Job"
TargetType = "Machine"
ClusterId = 104
ProcId = 0
GlobalJobId = "htc-schedd.novalocal#104.0#1796370000"
Owner = "other"
User = "other@htc.dodas"
Cmd = "/home/other/analysis/run.sh"
Arguments = "--chunk 0"
JobUniverse = 5
JobStatus = 5
EnteredCurrentStatus = 1796370000
QDate = 1796370000
RequestCpus = 1
RequestMemory = 2000
RequestDisk = DiskUsage
DiskUsage = 1000
Requirements = (TARGET.Arch == "X86_64") && (TARGET.OpSys == "LINUX") && (TARGET.Disk >= RequestDisk) && (TARGET.Memory >= RequestMemory) && (TARGET.Cpus >= RequestCpus)
