/*
 * A Vulkan layer that prints the compiler statistics of every compute pipeline the
 * application creates, as the driver reports them through VK_KHR_pipeline_executable_properties
 * (registers, spills and fills, occupancy, instructions, shared memory: each driver its own
 * names). scripts/gpu_compilers.sh builds it in the Mesa 26 root and enables it with
 * VK_LAYER_PATH and VK_INSTANCE_LAYERS=VK_LAYER_WGBERT_pipeline_stats while `wgbert kernels
 * --compile` creates one pipeline at a time, each named on stderr just before.
 *
 * It enables the extension and its feature at device creation (where the device has it),
 * adds VK_PIPELINE_CREATE_CAPTURE_STATISTICS_BIT_KHR to every compute pipeline, and after
 * each is created prints, on stderr:
 *   executable: NAME | subgroup SIZE | DESCRIPTION
 *   stat: NAME = VALUE
 * for each of the pipeline's executables (drivers that compile several SIMD widths report
 * each). Everything else passes through untouched.
 *
 * Build: cc -shared -fPIC -O1 -o libwgbert_pipeline_stats.so pipeline_stats_layer.c
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vulkan/vk_layer.h>
#include <vulkan/vulkan.h>

#define EXPORT __attribute__((visibility("default")))
#define EXTENSION VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME

/* Dispatchable handles start with the loader's dispatch table: the key of their records. */
static void *key(const void *handle) { return *(void *const *)handle; }

struct instance_rec {
    void *key;
    VkInstance instance;
    PFN_vkGetInstanceProcAddr gipa;
    struct instance_rec *next;
};

struct device_rec {
    void *key;
    PFN_vkGetDeviceProcAddr gdpa;
    PFN_vkCreateComputePipelines create_compute;
    PFN_vkGetPipelineExecutablePropertiesKHR properties;
    PFN_vkGetPipelineExecutableStatisticsKHR statistics;
    int capture;
    struct device_rec *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct instance_rec *instances;
static struct device_rec *devices;

static struct instance_rec *instance_of(const void *handle) {
    pthread_mutex_lock(&lock);
    struct instance_rec *r = instances;
    while (r && r->key != key(handle)) r = r->next;
    pthread_mutex_unlock(&lock);
    return r;
}

static struct device_rec *device_of(const void *handle) {
    pthread_mutex_lock(&lock);
    struct device_rec *r = devices;
    while (r && r->key != key(handle)) r = r->next;
    pthread_mutex_unlock(&lock);
    return r;
}

static void *chain_link(const void *pnext, VkStructureType type) {
    /* The loader's link info in the create info's chain. */
    VkLayerInstanceCreateInfo *c = (VkLayerInstanceCreateInfo *)pnext;
    while (c && !(c->sType == type && c->function == VK_LAYER_LINK_INFO))
        c = (VkLayerInstanceCreateInfo *)c->pNext;
    return c;
}

static VKAPI_ATTR VkResult VKAPI_CALL stats_CreateInstance(const VkInstanceCreateInfo *info,
                                                           const VkAllocationCallbacks *alloc,
                                                           VkInstance *instance) {
    VkLayerInstanceCreateInfo *link =
        chain_link(info->pNext, VK_STRUCTURE_TYPE_LOADER_INSTANCE_CREATE_INFO);
    if (!link) return VK_ERROR_INITIALIZATION_FAILED;
    PFN_vkGetInstanceProcAddr gipa = link->u.pLayerInfo->pfnNextGetInstanceProcAddr;
    link->u.pLayerInfo = link->u.pLayerInfo->pNext;
    PFN_vkCreateInstance create = (PFN_vkCreateInstance)gipa(NULL, "vkCreateInstance");
    VkResult r = create(info, alloc, instance);
    if (r != VK_SUCCESS) return r;
    struct instance_rec *rec = calloc(1, sizeof *rec);
    if (!rec) return VK_ERROR_OUT_OF_HOST_MEMORY;
    *rec = (struct instance_rec){key(*instance), *instance, gipa, NULL};
    pthread_mutex_lock(&lock);
    rec->next = instances;
    instances = rec;
    pthread_mutex_unlock(&lock);
    return VK_SUCCESS;
}

static int has_extension(struct instance_rec *inst, VkPhysicalDevice pd) {
    PFN_vkEnumerateDeviceExtensionProperties list = (PFN_vkEnumerateDeviceExtensionProperties)
        inst->gipa(inst->instance, "vkEnumerateDeviceExtensionProperties");
    uint32_t n = 0;
    if (!list || list(pd, NULL, &n, NULL) != VK_SUCCESS) return 0;
    VkExtensionProperties *p = calloc(n ? n : 1, sizeof *p);
    int found = 0;
    if (p && list(pd, NULL, &n, p) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; i++) found |= !strcmp(p[i].extensionName, EXTENSION);
    free(p);
    return found;
}

static VKAPI_ATTR VkResult VKAPI_CALL stats_CreateDevice(VkPhysicalDevice pd,
                                                         const VkDeviceCreateInfo *info,
                                                         const VkAllocationCallbacks *alloc,
                                                         VkDevice *device) {
    VkLayerDeviceCreateInfo *link =
        chain_link(info->pNext, VK_STRUCTURE_TYPE_LOADER_DEVICE_CREATE_INFO);
    struct instance_rec *inst = instance_of(pd);
    if (!link || !inst) return VK_ERROR_INITIALIZATION_FAILED;
    PFN_vkGetDeviceProcAddr gdpa = link->u.pLayerInfo->pfnNextGetDeviceProcAddr;
    PFN_vkCreateDevice create = (PFN_vkCreateDevice)
        link->u.pLayerInfo->pfnNextGetInstanceProcAddr(inst->instance, "vkCreateDevice");
    link->u.pLayerInfo = link->u.pLayerInfo->pNext;

    int capture = has_extension(inst, pd);
    VkDeviceCreateInfo ours = *info;
    const char **names = calloc(info->enabledExtensionCount + 1, sizeof *names);
    if (!names) return VK_ERROR_OUT_OF_HOST_MEMORY;
    int present = 0;
    for (uint32_t i = 0; i < info->enabledExtensionCount; i++) {
        names[i] = info->ppEnabledExtensionNames[i];
        present |= !strcmp(names[i], EXTENSION);
    }
    ours.ppEnabledExtensionNames = names;
    VkPhysicalDevicePipelineExecutablePropertiesFeaturesKHR feature = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PIPELINE_EXECUTABLE_PROPERTIES_FEATURES_KHR,
        .pNext = (void *)info->pNext,
        .pipelineExecutableInfo = VK_TRUE,
    };
    if (capture) {
        if (!present) names[ours.enabledExtensionCount++] = EXTENSION;
        ours.pNext = &feature;
    } else {
        fprintf(stderr, "pipeline-stats layer: the device has no %s\n", EXTENSION);
    }
    VkResult r = create(pd, &ours, alloc, device);
    free(names);
    if (r != VK_SUCCESS) return r;
    struct device_rec *rec = calloc(1, sizeof *rec);
    if (!rec) return VK_ERROR_OUT_OF_HOST_MEMORY;
    rec->key = key(*device);
    rec->gdpa = gdpa;
    rec->create_compute = (PFN_vkCreateComputePipelines)gdpa(*device, "vkCreateComputePipelines");
    rec->properties = (PFN_vkGetPipelineExecutablePropertiesKHR)gdpa(
        *device, "vkGetPipelineExecutablePropertiesKHR");
    rec->statistics = (PFN_vkGetPipelineExecutableStatisticsKHR)gdpa(
        *device, "vkGetPipelineExecutableStatisticsKHR");
    rec->capture = capture && rec->properties && rec->statistics;
    pthread_mutex_lock(&lock);
    rec->next = devices;
    devices = rec;
    pthread_mutex_unlock(&lock);
    return VK_SUCCESS;
}

static void print_statistics(struct device_rec *d, VkDevice device, VkPipeline pipeline) {
    VkPipelineInfoKHR pi = {VK_STRUCTURE_TYPE_PIPELINE_INFO_KHR, NULL, pipeline};
    uint32_t n = 0;
    if (d->properties(device, &pi, &n, NULL) != VK_SUCCESS) return;
    VkPipelineExecutablePropertiesKHR *ex = calloc(n ? n : 1, sizeof *ex);
    if (!ex) return;
    for (uint32_t i = 0; i < n; i++) ex[i].sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_PROPERTIES_KHR;
    if (d->properties(device, &pi, &n, ex) == VK_SUCCESS) {
        for (uint32_t e = 0; e < n; e++) {
            fprintf(stderr, "executable: %s | subgroup %u | %s\n", ex[e].name, ex[e].subgroupSize,
                    ex[e].description);
            VkPipelineExecutableInfoKHR ei = {VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_INFO_KHR,
                                              NULL, pipeline, e};
            uint32_t m = 0;
            if (d->statistics(device, &ei, &m, NULL) != VK_SUCCESS) continue;
            VkPipelineExecutableStatisticKHR *st = calloc(m ? m : 1, sizeof *st);
            if (!st) continue;
            for (uint32_t i = 0; i < m; i++)
                st[i].sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_STATISTIC_KHR;
            if (d->statistics(device, &ei, &m, st) == VK_SUCCESS) {
                for (uint32_t i = 0; i < m; i++) {
                    switch (st[i].format) {
                    case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_BOOL32_KHR:
                        fprintf(stderr, "stat: %s = %u\n", st[i].name, st[i].value.b32);
                        break;
                    case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_INT64_KHR:
                        fprintf(stderr, "stat: %s = %" PRId64 "\n", st[i].name, st[i].value.i64);
                        break;
                    case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_UINT64_KHR:
                        fprintf(stderr, "stat: %s = %" PRIu64 "\n", st[i].name, st[i].value.u64);
                        break;
                    default:
                        fprintf(stderr, "stat: %s = %g\n", st[i].name, st[i].value.f64);
                    }
                }
            }
            free(st);
        }
    }
    free(ex);
}

static VKAPI_ATTR VkResult VKAPI_CALL stats_CreateComputePipelines(
    VkDevice device, VkPipelineCache cache, uint32_t count,
    const VkComputePipelineCreateInfo *infos, const VkAllocationCallbacks *alloc,
    VkPipeline *pipelines) {
    struct device_rec *d = device_of(device);
    if (!d) return VK_ERROR_INITIALIZATION_FAILED;
    if (!d->capture) return d->create_compute(device, cache, count, infos, alloc, pipelines);
    VkComputePipelineCreateInfo *ours = calloc(count ? count : 1, sizeof *ours);
    if (!ours) return VK_ERROR_OUT_OF_HOST_MEMORY;
    for (uint32_t i = 0; i < count; i++) {
        ours[i] = infos[i];
        ours[i].flags |= VK_PIPELINE_CREATE_CAPTURE_STATISTICS_BIT_KHR;
    }
    VkResult r = d->create_compute(device, cache, count, ours, alloc, pipelines);
    free(ours);
    if (r == VK_SUCCESS)
        for (uint32_t i = 0; i < count; i++) print_statistics(d, device, pipelines[i]);
    return r;
}

EXPORT VKAPI_ATTR PFN_vkVoidFunction VKAPI_CALL stats_GetDeviceProcAddr(VkDevice device,
                                                                        const char *name);

EXPORT VKAPI_ATTR PFN_vkVoidFunction VKAPI_CALL stats_GetInstanceProcAddr(VkInstance instance,
                                                                          const char *name) {
    if (!strcmp(name, "vkGetInstanceProcAddr")) return (PFN_vkVoidFunction)stats_GetInstanceProcAddr;
    if (!strcmp(name, "vkCreateInstance")) return (PFN_vkVoidFunction)stats_CreateInstance;
    if (!strcmp(name, "vkCreateDevice")) return (PFN_vkVoidFunction)stats_CreateDevice;
    if (!strcmp(name, "vkGetDeviceProcAddr")) return (PFN_vkVoidFunction)stats_GetDeviceProcAddr;
    if (!strcmp(name, "vkCreateComputePipelines"))
        return (PFN_vkVoidFunction)stats_CreateComputePipelines;
    if (!instance) return NULL;
    struct instance_rec *r = instance_of(instance);
    return r ? r->gipa(instance, name) : NULL;
}

EXPORT VKAPI_ATTR PFN_vkVoidFunction VKAPI_CALL stats_GetDeviceProcAddr(VkDevice device,
                                                                        const char *name) {
    if (!strcmp(name, "vkGetDeviceProcAddr")) return (PFN_vkVoidFunction)stats_GetDeviceProcAddr;
    if (!strcmp(name, "vkCreateComputePipelines"))
        return (PFN_vkVoidFunction)stats_CreateComputePipelines;
    struct device_rec *r = device_of(device);
    return r ? r->gdpa(device, name) : NULL;
}
